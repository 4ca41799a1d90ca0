// Writing a file so that a crash at any moment leaves either the old file or the new one, never
// a mix: the bytes go to a temporary file beside it, which is flushed to the disk (fsync), then
// renamed over the target (atomic on POSIX file systems), and the folder is synced so that the
// rename itself survives a power cut.
#pragma once

#include <string>

namespace gradaccum {

// Writes `bytes` to `path` atomically (the folder must exist). On any failure the target is
// untouched, the temporary file removed, and an Error names the path and the system's reason.
void write_file_atomically(const std::string& path, const std::string& bytes);
// The temporary name write_file_atomically uses for `path` in this process (what a crash in the
// middle of a write leaves behind; the next write of the same path replaces it).
std::string atomic_temporary_path(const std::string& path);

}  // namespace gradaccum

// A state dict (PyTorch's name): what a training run needs to continue bit for bit, as named
// tensors (copied to the host) and named text values. Modules, optimizers and windows each give
// theirs (autograd/module.h, optim/sgd.h, optim/accumulation_window.h), merged under a prefix; the
// whole is saved as one file, atomically.
//
// The file: "GRADACCUM-STATE 1\n", an 8-byte little-endian header length, the header (lines
// "text <key> <value>" and "tensor <name> <offset> <bytes>"), the tensors as .npy images, then
// the CRC-32 (zlib) of everything before it and "END\n". A truncated or corrupted file, or one
// that is not a state file, is an Error naming the file and what is wrong.
#pragma once

#include <map>
#include <string>

#include "core/tensor.h"

namespace gradaccum {

// The decimal text of v that reads back (strtod) as the same double: "%.17g".
std::string exact_decimal(double v);

class StateDict {
 public:
  // Keys: no whitespace; text values: no line breaks (checked).
  void set_text(const std::string& key, const std::string& value);
  void set_tensor(const std::string& name, const Tensor& t);  // a host copy is kept

  bool has_text(const std::string& key) const { return texts_.count(key) != 0; }
  bool has_tensor(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throw naming the missing key (and `what` holds it, for the message) when it is not there.
  const std::string& text(const std::string& key) const;
  const Tensor& tensor(const std::string& name) const;
  // A text value as an integer (the whole text; throws naming the key otherwise).
  std::int64_t integer(const std::string& key) const;
  // A double stored as its exact_decimal text, and read back to the same bits (throws naming
  // the key when the text is not a number).
  void set_number(const std::string& key, double v) { set_text(key, exact_decimal(v)); }
  double number(const std::string& key) const;

  const std::map<std::string, std::string>& texts() const { return texts_; }
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }

  // Adds every entry of `other` under "prefix" + its key; throws on a key already present.
  void merge(const std::string& prefix, const StateDict& other);
  // The entries whose keys start with `prefix`, with the prefix removed.
  StateDict under(const std::string& prefix) const;

  // The file's bytes, and back (`name` for error messages).
  std::string serialize() const;
  static StateDict parse(const std::string& bytes, const std::string& name);
  // Writes the file atomically (core/atomic_file.h): a crash leaves the previous one whole.
  void save(const std::string& path) const;
  static StateDict load(const std::string& path);

 private:
  std::map<std::string, std::string> texts_;
  std::map<std::string, Tensor> tensors_;
};

}  // namespace gradaccum

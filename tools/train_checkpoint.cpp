#include "train_checkpoint.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace gradaccum::tools {

std::string checkpoint_file(const std::string& dir) {
  return (std::filesystem::path(dir) / "checkpoint.state").string();
}

void prepare_checkpoint_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  GA_CHECK(!ec, "--checkpoint " << dir << ": cannot create the folder: " << ec.message());
  GA_CHECK(std::filesystem::is_directory(dir), "--checkpoint " << dir << ": not a folder");
  GA_CHECK(access(dir.c_str(), W_OK | X_OK) == 0,
           "--checkpoint " << dir << ": cannot write there: " << std::strerror(errno));
}

void save_checkpoint(const std::string& dir, const Arithmetic& flags, const RunPosition& p,
                     const nn::Module& model, const optim::Optimizer& opt,
                     const optim::AccumulationWindow& window) {
  StateDict s;
  s.set_text("format", "gradaccum-train 1");
  for (const auto& [flag, value] : flags)
    s.set_text("flag." + flag, value);
  s.set_text("run.step", std::to_string(p.step));
  s.set_text("run.epoch", std::to_string(p.epoch));
  s.set_text("run.batch", std::to_string(p.batch));
  s.set_text("run.skipped", std::to_string(p.skipped));
  s.set_text("run.dropped", std::to_string(p.dropped));
  s.set_text("run.world", std::to_string(p.world));
  s.merge("model.", model.state_dict());
  s.merge("optimizer.", opt.state_dict());
  s.merge("window.", window.state_dict());
  s.save(checkpoint_file(dir));
}

Checkpoint load_checkpoint(const std::string& dir, const Arithmetic& flags) {
  const std::string file = checkpoint_file(dir);
  GA_CHECK(std::filesystem::exists(file),
           "--resume " << dir << ": no checkpoint there (expected " << file << ")");
  Checkpoint c{StateDict::load(file), {}};
  const StateDict& s = c.state;
  GA_CHECK(s.has_text("format") && s.text("format") == "gradaccum-train 1",
           "--resume " << dir << ": " << file << " is not a gradaccum-train checkpoint");
  for (const auto& [flag, value] : flags) {
    const std::string key = "flag." + flag;
    const std::string saved = s.has_text(key) ? s.text(key) : "(not set)";
    GA_CHECK(saved == value, "--resume " << dir << ": the checkpoint was made with --" << flag
                                         << " " << saved << ", this run has --" << flag << " "
                                         << value
                                         << "; expected the same (resume with the flags "
                                            "of the run that wrote it)");
  }
  const StateDict saved_flags = s.under("flag.");
  for (const auto& [key, value] : saved_flags.texts()) {
    bool known = false;
    for (const auto& f : flags)
      known = known || f.first == key;
    GA_CHECK(known, "--resume " << dir << ": the checkpoint was made with --" << key << " " << value
                                << ", which this run does not set; expected the same "
                                   "flags");
  }
  c.position.step = s.integer("run.step");
  c.position.epoch = s.integer("run.epoch");
  c.position.batch = s.integer("run.batch");
  c.position.skipped = s.integer("run.skipped");
  c.position.dropped = s.integer("run.dropped");
  c.position.world = s.integer("run.world");
  GA_CHECK(c.position.step >= 0 && c.position.epoch >= 0 && c.position.batch >= 0,
           "--resume " << dir << ": negative position in " << file);
  return c;
}

void restore_model(const Checkpoint& c, nn::Module& model) {
  model.load_state_dict(c.state.under("model."));
}

void restore_training(const Checkpoint& c, optim::Optimizer& opt,
                      optim::AccumulationWindow& window) {
  opt.load_state_dict(c.state.under("optimizer."));
  window.load_state_dict(c.state.under("window."));
}

}  // namespace gradaccum::tools

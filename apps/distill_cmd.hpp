#pragma once
// `sdekit distill consistency` and `sdekit distill progressive`: the command-line side of
// distill/distill.hpp.
#include <CLI/CLI.hpp>

#include <iosfwd>
#include <memory>
#include <string>

namespace sdekit {

class DistillCommand {
 public:
  /// Adds the subcommand (and its two methods) to `app`.
  explicit DistillCommand(CLI::App& app);
  ~DistillCommand();
  bool chosen() const;
  /// Runs the chosen method; `command` is the command line, recorded in the output's JSON.
  int run(const std::string& command, std::ostream& out, std::ostream& err);

 private:
  struct Args;
  std::unique_ptr<Args> a_;
  CLI::App* cmd_ = nullptr;
  CLI::App* cd_ = nullptr;
  CLI::App* pd_ = nullptr;
};

}  // namespace sdekit

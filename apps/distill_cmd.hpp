#pragma once
// `sdekit distill consistency` and `sdekit distill progressive`: the command-line side of
// distill/distill.hpp.
#include <CLI/CLI.hpp>

#include <iosfwd>
#include <memory>
#include <string>

#include "apps/command.hpp"

namespace sdekit {

class DistillCommand final : public Command {
 public:
  DistillCommand();
  ~DistillCommand() override;
  /// Adds the subcommand (and its two methods) to `app`.
  void add_to(CLI::App& app) override;
  /// Runs the chosen method; `command` is the command line, recorded in the output's JSON.
  int run(const std::string& command, std::ostream& out, std::ostream& err) override;

 private:
  struct Args;
  std::unique_ptr<Args> a_;
  CLI::App* cmd_ = nullptr;
  CLI::App* cd_ = nullptr;
  CLI::App* pd_ = nullptr;
};

}  // namespace sdekit

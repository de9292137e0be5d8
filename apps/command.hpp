#pragma once
// One subcommand of `sdekit`: it adds itself and its options to the command line and runs when
// the user chose it. run_cli (apps/cli.cpp) is a loop over all_commands(); a new subcommand is
// one file with its make_*_command() factory plus one line in apps/commands.cpp.
#include <CLI/CLI.hpp>

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace sdekit {

class Command {
 public:
  virtual ~Command() = default;
  /// Adds the subcommand and its options to `app`.
  virtual void add_to(CLI::App& app) = 0;
  /// Whether the parsed command line chose this command.
  virtual bool chosen() const { return sub_ != nullptr && sub_->parsed(); }
  /// Runs it. `command_line` is the whole command line (recorded by commands that write
  /// results). Bad input throws std::invalid_argument (exit 2).
  virtual int run(const std::string& command_line, std::ostream& out, std::ostream& err) = 0;
  /// Whether it runs over several processes (torchrun's environment, docs/theory.md section
  /// 10); the others are refused there with a message.
  virtual bool shards() const { return false; }
  /// Whether run_cli joins the process group for it (false for `launch`, which starts one).
  virtual bool joins_group() const { return shards(); }
  std::string name() const { return sub_ ? sub_->get_name() : std::string(); }

 protected:
  CLI::App* sub_ = nullptr;
};

/// Every subcommand, in the order of `sdekit --help`.
std::vector<std::unique_ptr<Command>> all_commands();

std::unique_ptr<Command> make_list_command();
std::unique_ptr<Command> make_sample_command();
std::unique_ptr<Command> make_encode_command();
std::unique_ptr<Command> make_moments_command();
std::unique_ptr<Command> make_converge_command();
std::unique_ptr<Command> make_optimize_grid_command();
std::unique_ptr<Command> make_fid_table_command();
std::unique_ptr<Command> make_guidance_table_command();
std::unique_ptr<Command> make_likelihood_command();
std::unique_ptr<Command> make_train_command();
std::unique_ptr<Command> make_classifier_command();
std::unique_ptr<Command> make_distill_command();
std::unique_ptr<Command> make_fd_command();
std::unique_ptr<Command> make_launch_command();

}  // namespace sdekit

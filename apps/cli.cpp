#include "apps/cli.hpp"

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>
#include <functional>
#include <new>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "apps/runtime.hpp"
#include "experiments/distributed.hpp"
#include "networks/module_check.hpp"

namespace sdekit {

using cli::clipped;
using cli::one_line;

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"sdekit: diffusion sampling as numerical SDE/ODE solving"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  const std::vector<std::unique_ptr<Command>> commands = all_commands();
  for (const auto& c : commands) c->add_to(app);

  // One thread budget on every command (apps/runtime.hpp).
  int threads = 0;
  double dist_timeout = 300.0;
  const std::function<void(CLI::App*)> add_threads = [&](CLI::App* c) {
    c->add_option("--threads", threads,
                  "Threads for tensor operations (0: one per core); OpenBLAS stays at 1")
        ->capture_default_str();
    c->add_option("--dist-timeout", dist_timeout,
                  "Runs over several processes (torchrun, sdekit launch): seconds a rank waits "
                  "for the store and the other ranks before it stops with an error naming them")
        ->capture_default_str();
    for (CLI::App* sub : c->get_subcommands({})) add_threads(sub);
  };
  for (CLI::App* sub : app.get_subcommands({})) add_threads(sub);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    // Usage errors are bad input: exit 2 with one line, like every other bad input.
    err << "error: " << clipped(one_line(e.what())) << " (see --help)\n";
    return 2;
  }
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  // Under torchrun's environment the ranks print their errors with their rank.
  std::string who;
  try {
    configure_threads(threads);
    for (const auto& c : commands) {
      if (!c->chosen()) continue;
      const dist::LaunchEnv env = dist::launch_env();
      if (env.world > 1) who = "rank " + std::to_string(env.rank) + ": ";
      if (env.world > 1 && !c->shards())
        throw std::invalid_argument("sdekit " + c->name() +
                                    " does not run over several processes (WORLD_SIZE=" +
                                    std::to_string(env.world) + "); run it in one process");
      if (!(dist_timeout > 0) || !(dist_timeout < 1e7))
        throw std::invalid_argument("--dist-timeout: expected seconds in (0, 1e7), got " +
                                    std::to_string(dist_timeout));
      std::unique_ptr<dist::Session> session;
      if (c->joins_group())
        session = dist::Session::start(
            env, std::chrono::milliseconds(static_cast<int64_t>(dist_timeout * 1000.0)));
      // Rank 0 alone prints the results; the others compute their share quietly.
      std::ostringstream quiet;
      const int rc = c->run(command_line, dist::writer() ? out : quiet, err);
      dist::finish();  // rank 0 hosts the store: it leaves last
      return rc;
    }
  } catch (const std::invalid_argument& e) {
    err << "error: " << who << clipped(e.what()) << "\n";
    return 2;
  } catch (const c10::Error& e) {
    // LibTorch's messages carry a C++ backtrace; the user gets the message alone.
    err << "error: " << who << clipped(brief_error(e)) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    err << "error: out of memory (a smaller --n or --batch needs less)\n";
    return 1;
  } catch (const std::exception& e) {
    const std::string m = e.what();
    err << "error: " << (m.rfind("rank ", 0) == 0 ? std::string() : who) << clipped(m) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace sdekit

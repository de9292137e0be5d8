#pragma once
// The sdekit command, as a function so tests can drive it in-process.
#include <iosfwd>

namespace sdekit {

/// Parses argv and runs the subcommand. Returns the exit code: 0 on success, 2 on bad input
/// (message on err naming the problem), 1 on a failure while running.
int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace sdekit

#pragma once
// Runs the sdekit command in-process and captures its exit code, stdout and stderr.
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli.hpp"

struct CliRun {
  int rc;
  std::string out, err;
};

inline CliRun cli(std::vector<std::string> args) {
  args.insert(args.begin(), "sdekit");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  const int rc = sdekit::run_cli(static_cast<int>(argv.size()), argv.data(), out, err);
  return {rc, out.str(), err.str()};
}

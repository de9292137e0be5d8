#include <iostream>

#include "apps/cli.hpp"

int main(int argc, char** argv) {
  return sdekit::run_cli(argc, argv, std::cout, std::cerr);
}

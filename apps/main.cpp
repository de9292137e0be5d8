#include <iostream>

#include "apps/cli.hpp"
#include "apps/runtime.hpp"

int main(int argc, char** argv) {
  sdekit::tune_allocator();  // before the first large tensor
  return sdekit::run_cli(argc, argv, std::cout, std::cerr);
}

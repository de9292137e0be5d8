// The README's "Adding a sampler": the example file compiles as it stands, its one registry entry
// makes it a sampler like the built-in ones, and `converge` measures its declared order 2 on
// Gaussian data against the closed-form PF-ODE solution. The README shows the file verbatim.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "../examples/midpoint_sampler.cpp"
#include "cli_run.hpp"
#include "experiments/converge.hpp"

namespace fs = std::filesystem;
using namespace sdekit;

namespace {
std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}
}  // namespace

TEST_CASE("Adding a sampler: the README's example registers, samples and converges at order 2",
          "[registry][converge]") {
  example::register_midpoint();
  CHECK_THROWS_WITH(example::register_midpoint(), Catch::Contains("already registered"));
  const auto s = make_sampler("midpoint");
  CHECK(s->order() == 2.0);
  CHECK(s->nfe_per_step() == 2);
  // The command line sees it too: `list` shows it, `sample` runs it, options it lacks are refused.
  CHECK_THAT(cli({"list"}).out, Catch::Contains("midpoint"));
  CHECK(cli({"sample", "--sampler", "midpoint", "--steps", "4", "--n", "16"}).rc == 0);
  CHECK(cli({"sample", "--sampler", "midpoint", "--eta", "1"}).rc == 2);

  // Gaussian data (a one-component mixture): the reference is the closed-form ODE solution.
  const fs::path dir = fs::temp_directory_path() / ("sdekit_example_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "g.json") << R"({"weights": [1], "means": [[0.5, -1]], "stds": [0.3]})";
  ConvergeSpec spec;
  spec.model = "gmm:" + (dir / "g.json").string();
  spec.samplers = {"midpoint", "heun"};
  spec.nfe = {80, 160, 320, 640};  // midpoint's error leaves its h^3 term by NFE 80
  spec.n = 32;
  const ConvergeReport rep = run_converge(spec, (dir / "out").string(), false);
  REQUIRE(rep.summaries.size() == 2);
  REQUIRE(rep.summaries[0].sampler == "midpoint");
  REQUIRE(rep.summaries[0].fitted);
  CHECK(rep.summaries[0].declared_order == 2.0);
  CHECK(rep.summaries[0].fit.order == Approx(2.0).margin(0.15));
  fs::remove_all(dir);

  // The README shows this file as it is.
  const fs::path src = fs::path(__FILE__).parent_path().parent_path();
  const std::string example = read_text(src / "examples" / "midpoint_sampler.cpp");
  REQUIRE(!example.empty());
  CHECK(read_text(src / "README.md").find(example) != std::string::npos);
}

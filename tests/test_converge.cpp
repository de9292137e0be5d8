// Convergence studies: the results folder (resume, spec changes, partial lines), the
// references, the fitted orders of the default study, the command, and bad input.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.hpp"
#include "experiments/converge.hpp"
#include "experiments/results_store.hpp"
#include "experiments/table.hpp"
#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "solvers/reference.hpp"
#include "solvers/registry.hpp"

namespace fs = std::filesystem;
using namespace sdekit;
using nlohmann::json;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("sdekit_test_converge_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path p = dir / name;
  fs::remove_all(p);
  return p;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::size_t count_lines(const fs::path& p) {
  const std::string t = read_text(p);
  return static_cast<std::size_t>(std::count(t.begin(), t.end(), '\n'));
}

// A small study touching every kind of cell: fixed-step ODE, adaptive, strong SDE.
ConvergeSpec small_spec() {
  ConvergeSpec s;
  s.model = "gmm64";
  s.samplers = {"euler", "heun", "dopri5", "euler-maruyama"};
  s.nfe = {4, 8, 16};
  s.tolerances = {1e-3, 1e-5};
  s.n = 16;
  s.sde_ref_steps = 256;
  return s;
}

struct Interrupt {};

}  // namespace

TEST_CASE("results store: append, reopen, partial last line, spec diff", "[converge][store]") {
  const fs::path dir = scratch("store");
  const std::string spec = R"({"a": 1, "b": [1, 2]})";
  {
    ResultsStore s(dir.string(), spec, false);
    CHECK(s.resumed() == 0);
    s.append("x", R"({"cell": "x", "v": 1})");
    s.append("y", R"({"cell": "y", "v": 2})");
    CHECK_THROWS_WITH(s.append("y", R"({"cell": "y", "v": 3})"), Catch::Contains("already"));
    CHECK_THROWS_WITH(s.append("z", R"({"cell": "w"})"), Catch::Contains("\"cell\" field"));
  }
  CHECK(count_lines(dir / "results.jsonl") == 2);
  // A write cut short by a kill: the partial line is dropped on reopening.
  {
    std::ofstream f(dir / "results.jsonl", std::ios::app | std::ios::binary);
    f << R"({"cell": "z", "v")";
  }
  {
    ResultsStore s(dir.string(), R"({"b": [1, 2], "a": 1})", false);  // same object, other order
    CHECK(s.dropped_partial_line());
    CHECK(s.resumed() == 2);
    CHECK(s.has("x"));
    CHECK(s.has("y"));
    CHECK_FALSE(s.has("z"));
    s.append("z", R"({"cell": "z", "v": 3})");
  }
  CHECK(count_lines(dir / "results.jsonl") == 3);
  // Another spec is refused with the fields that differ.
  try {
    ResultsStore s(dir.string(), R"({"a": 2, "b": [1, 2], "c": true})", false);
    FAIL("a different spec was accepted");
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    CHECK_THAT(m, Catch::Contains("a: stored 1, now 2"));
    CHECK_THAT(m, Catch::Contains("c: stored (absent), now true"));
    CHECK_THAT(m, Catch::Contains("--fresh"));
    CHECK_THAT(m, !Catch::Contains("b:"));
  }
  // fresh starts over.
  ResultsStore s(dir.string(), R"({"a": 2})", true);
  CHECK(s.resumed() == 0);
  CHECK_FALSE(fs::exists(dir / "results.jsonl"));
  // A malformed line in the middle names the file and line.
  {
    std::ofstream f(dir / "results.jsonl", std::ios::binary);
    f << R"({"cell": "x"})"
      << "\n"
      << "{oops\n";
  }
  CHECK_THROWS_WITH(ResultsStore(dir.string(), R"({"a": 2})", false),
                    Catch::Contains("results.jsonl line 2") && Catch::Contains("not valid JSON"));
}

TEST_CASE("converge: an interrupted study resumes to the uninterrupted result",
          "[converge][resume]") {
  const ConvergeSpec spec = small_spec();
  const fs::path whole = scratch("whole"), parts = scratch("parts");
  const ConvergeReport ref = run_converge(spec, whole.string(), false);
  REQUIRE(ref.computed == ref.cells.size());
  REQUIRE(ref.cells.size() == 3 * 3 + 2);  // euler, heun, EM x 3 NFE; dopri5 x 2 tolerances

  // Stop after k cells (an exception from the progress callback, as an interrupt would).
  const std::size_t k = 5;
  CHECK_THROWS_AS(run_converge(spec, parts.string(), false,
                               [&](const ConvergeProgress& p) {
                                 if (!p.cell.empty() && p.done == k) throw Interrupt{};
                               }),
                  Interrupt);
  REQUIRE(count_lines(parts / "results.jsonl") == k);
  const std::string stored_before = read_text(parts / "results.jsonl");

  const ConvergeReport resumed = run_converge(spec, parts.string(), false);
  CHECK(resumed.resumed == k);
  CHECK(resumed.computed == ref.cells.size() - k);
  // Nothing stored was rewritten: the first k lines are as they were.
  CHECK(read_text(parts / "results.jsonl").substr(0, stored_before.size()) == stored_before);
  REQUIRE(resumed.cells.size() == ref.cells.size());
  for (std::size_t i = 0; i < ref.cells.size(); ++i) {
    INFO(ref.cells[i].key());
    CHECK(resumed.cells[i].key() == ref.cells[i].key());
    CHECK(resumed.cells[i].nfe == ref.cells[i].nfe);
    CHECK(resumed.cells[i].rms == ref.cells[i].rms);  // same x_T, path and arithmetic
    CHECK(resumed.cells[i].max == ref.cells[i].max);
  }
  CHECK(converge_markdown(resumed) == converge_markdown(ref));

  // A third run computes nothing.
  const ConvergeReport again = run_converge(spec, parts.string(), false);
  CHECK(again.computed == 0);
  CHECK(again.ode_reference.cached);
  CHECK(again.sde_reference.cached);

  // A changed spec is refused, naming the field; fresh starts over.
  ConvergeSpec other = spec;
  other.nfe = {4, 8, 32};
  CHECK_THROWS_WITH(run_converge(other, parts.string(), false),
                    Catch::Contains("nfe: stored [4,8,16], now [4,8,32]"));
  const ConvergeReport fresh = run_converge(other, parts.string(), true);
  CHECK(fresh.resumed == 0);
  CHECK(count_lines(parts / "results.jsonl") == fresh.cells.size());
}

TEST_CASE("converge: the single-Gaussian closed form agrees with the dopri5 reference",
          "[converge][reference]") {
  // A 3-d Gaussian: the study uses the closed-form PF-ODE flow as its reference; dopri5 at
  // rtol = atol = 1e-10 from the same x_T must land within 1e-8 of it (its own error estimate
  // is ~1e-10), and Heun's error must fall with order 2 against it.
  const fs::path dir = scratch("gauss");
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "g.json");
    f << R"({"weights": [1], "means": [[0.5, -1.0, 2.0]],
             "covariances": [[[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.2]]]})";
  }
  ConvergeSpec spec;
  spec.model = "gmm:" + (dir / "g.json").string();
  spec.samplers = {"heun", "dopri5"};
  spec.nfe = {20, 40, 80, 160};
  spec.tolerances = {1e-10};
  spec.n = 32;
  const ConvergeReport rep = run_converge(spec, (dir / "out").string(), false);
  CHECK(rep.ode_reference.method.find("closed form") != std::string::npos);
  CHECK(rep.ode_reference.error_estimate == 0.0);
  bool saw_dopri = false;
  for (const auto& c : rep.cells)
    if (c.sampler == "dopri5") {
      saw_dopri = true;
      CHECK(c.max < 1e-8);
    }
  CHECK(saw_dopri);
  REQUIRE(rep.summaries[0].fitted);
  CHECK(rep.summaries[0].fit.order == Approx(2.0).margin(0.15));
}

TEST_CASE("converge: the default study's fitted orders match the declared orders",
          "[converge][order]") {
  // The default spec: gmm64 under vp-linear, uniform-lambda grid, t 1 -> 1e-3, batch 32,
  // NFE 5..800, every deterministic sampler plus the SDE discretizations with strong errors. The
  // order is fitted over the automatically chosen asymptotic range. Fixed-step samplers: within 15%
  // of the declared order plus two standard errors (measured: euler 1.08, heun 1.91, rk4 3.85,
  // ddim 1.01, dpm-solver-3 2.90, dpmpp-3m 3.05, unipc-3 3.47 (declared 4, its corrector's order,
  // still rising at NFE 800), euler-maruyama 1.01, ancestral 0.91, sra 2.1 +- 0.3 (order 1.5; 2
  // where the drift is near linear)). Adaptive samplers are swept over tolerances, and the error
  // falls faster with NFE than the method's order while the step size controller settles
  // (dopri5 7.5, fehlberg78 12): required is at least the declared order less the same allowance.
  const fs::path dir = scratch("default");
  const ConvergeReport rep = run_converge(ConvergeSpec{}, dir.string(), false);
  CHECK(rep.summaries.size() == default_converge_samplers().size());
  for (const auto& s : rep.summaries) {
    REQUIRE(s.fitted);
    INFO(s.sampler << " (" << s.kind << "): declared " << s.declared_order << ", fitted "
                   << s.fit.order << " +- " << s.fit.std_error << " over NFE " << s.nfe[s.fit.first]
                   << ".." << s.nfe[s.fit.last]);
    CHECK(s.fit.points() >= 3);
    const double allowance = 0.15 * s.declared_order + 2.0 * s.fit.std_error;
    if (s.kind == "adaptive")
      CHECK(s.fit.order >= s.declared_order - allowance);
    else
      CHECK(std::abs(s.fit.order - s.declared_order) <= allowance);
  }
}

TEST_CASE("converge: bad specs name the field", "[converge][errors]") {
  ConvergeSpec s = small_spec();
  s.samplers = {"heun", "nope"};
  CHECK_THROWS_WITH(validate(s), Catch::Contains("samplers") && Catch::Contains("nope"));
  s = small_spec();
  s.nfe = {5, 0};
  CHECK_THROWS_WITH(validate(s), Catch::Contains("nfe") && Catch::Contains("got 0"));
  s = small_spec();
  s.n = 1;
  CHECK_THROWS_WITH(validate(s), Catch::Contains("'n'"));
  s = small_spec();
  s.t_end = 2.0;
  CHECK_THROWS_WITH(validate(s), Catch::Contains("t_end"));
  s = small_spec();
  s.tolerances = {0.0};
  CHECK_THROWS_WITH(validate(s), Catch::Contains("tolerances"));

  CHECK_THROWS_WITH(converge_spec_from_json("{\"nfe\": [5, 10", "spec.json"),
                    Catch::Contains("spec.json") && Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(converge_spec_from_json(R"({"nfe": "many"})", "s.json"),
                    Catch::Contains("s.json") && Catch::Contains("'nfe'") &&
                        Catch::Contains("positive integers") && Catch::Contains("\"many\""));
  CHECK_THROWS_WITH(converge_spec_from_json(R"({"nfe": [5, -1]})", "s.json"),
                    Catch::Contains("s.json") && Catch::Contains("got -1"));
  CHECK_THROWS_WITH(converge_spec_from_json(R"({"samplers": ["heun", "bogus"]})", "s.json"),
                    Catch::Contains("bogus") && Catch::Contains("valid:"));
  CHECK_THROWS_WITH(converge_spec_from_json(R"({"stepz": 3})", "s.json"),
                    Catch::Contains("unknown field 'stepz'"));
  CHECK_THROWS_WITH(converge_spec_from_json("[1, 2]", "s.json"),
                    Catch::Contains("expected a JSON object"));
  const ConvergeSpec ok = converge_spec_from_json(
      R"({"samplers": "heun,euler", "nfe": [4, 8], "t-end": 0.01, "n": 8})", "s.json");
  CHECK(ok.samplers == std::vector<std::string>{"heun", "euler"});
  CHECK(ok.nfe == std::vector<int>{4, 8});
  CHECK(ok.t_end == 0.01);
  CHECK(ok.n == 8);
  // The resolved spec round-trips through its JSON.
  const ConvergeSpec back = converge_spec_from_json(converge_spec_json(ok), "spec.json");
  CHECK(converge_spec_json(back) == converge_spec_json(ok));
}

TEST_CASE("sdekit converge: files, JSON output, resume and bad input", "[converge][cli]") {
  const fs::path dir = scratch("cli");
  const std::vector<std::string> base = {"converge", "--samplers", "euler,heun", "--nfe",
                                         "4,8,16",   "--n",        "8",          "--quiet",
                                         "--out",    dir.string()};
  CliRun r = cli(base);
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("| heun") && Catch::Contains("Empirical orders"));
  CHECK(count_lines(dir / "results.jsonl") == 6);
  for (const char* f : {"spec.json", "results.csv", "results.md", "reference.npy"})
    CHECK(fs::exists(dir / f));
  CHECK(count_lines(dir / "results.csv") == 7);
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0) {
    CHECK(fs::file_size(dir / "error_vs_nfe.png") > 1000);
  }
  // Rerun: everything reused; --json gives a parseable report.
  std::vector<std::string> js = base;
  js.push_back("--json");
  r = cli(js);
  REQUIRE(r.rc == 0);
  const json j = json::parse(r.out);
  CHECK(j["computed"] == 0);
  CHECK(j["resumed"] == 6);
  CHECK(j["cells"].size() == 6);
  CHECK(j["orders"][1]["sampler"] == "heun");
  // Changed spec refused with the field, exit code 2.
  std::vector<std::string> changed = base;
  changed[4] = "4,8,32";
  r = cli(changed);
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("nfe: stored [4,8,16], now [4,8,32]"));
  // Bad input.
  std::vector<std::string> bad = base;
  bad[4] = "4,0";
  r = cli(bad);
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--nfe") && Catch::Contains("got 0"));
  bad[4] = "4,x";
  r = cli(bad);
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("'x' is not a number"));
  bad = base;
  bad[2] = "euler,nope";
  r = cli(bad);
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown sampler 'nope'"));
  {
    std::ofstream f(dir / "bad.json");
    f << R"({"nfe": [4, 8], "dtype": 64})";
  }
  r = cli({"converge", "--spec", (dir / "bad.json").string(), "--out", (dir / "x").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("bad.json") && Catch::Contains("'dtype'") &&
                        Catch::Contains("expected a string"));
  r = cli({"converge", "--spec", (dir / "missing.json").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("missing.json") && Catch::Contains("cannot open"));
}

TEST_CASE("table writer: Markdown pads and aligns columns, CSV quotes what needs it",
          "[converge][table]") {
  Table t;
  t.column("sampler", Table::Align::Left).column("NFE").column("note", Table::Align::Left);
  t.row({"heun", "10", ""}).row({"dpmpp-2m", "5", "a, \"b\""});
  CHECK(t.markdown() ==
        "| sampler  | NFE | note   |\n"
        "|----------|----:|--------|\n"
        "| heun     |  10 |        |\n"
        "| dpmpp-2m |   5 | a, \"b\" |\n");
  CHECK(t.csv() ==
        "sampler,NFE,note\n"
        "heun,10,\n"
        "dpmpp-2m,5,\"a, \"\"b\"\"\"\n");
  CHECK_THROWS_WITH(t.row({"x"}), Catch::Contains("expected 3 cells, got 1"));
}

TEST_CASE("converge spec: every field declared once reads, writes and has its flag",
          "[converge][spec]") {
  // Every field takes a value other than its default; JSON out and back in gives it back.
  ConvergeSpec s;
  s.model = "ring2d";
  s.sde = "vp-cosine";
  s.samplers = {"heun", "euler"};
  s.nfe = {6, 12};
  s.tolerances = {1e-4};
  s.n = 9;
  s.seed = 7;
  s.dtype = "float32";
  s.t_end = 0.01;
  s.grid = "uniform-t";
  s.ref_tol = 1e-9;
  s.sde_ref_steps = 64;
  s.compat = "dpm-solver";
  s.classifier = "exact";
  s.classifier_scale = 2.0;
  s.label = 1;
  const std::string text = converge_spec_json(s);
  const json j = json::parse(text);
  std::vector<std::string> names;
  for (const auto& f : converge_spec_schema()) {
    names.push_back(f.name);
    if (!f.written_when_set) CHECK(j.contains(f.name));
  }
  // param, event_shape and unconditional (which a mixture cannot take) are written only when
  // set.
  CHECK(j.size() == names.size() - 3);
  const ConvergeSpec back = converge_spec_from_json(text, "round-trip");
  CHECK(converge_spec_json(back) == text);
  CHECK(back.seed == 7);
  CHECK(back.compat == "dpm-solver");
  CHECK(back.classifier_scale == 2.0);
  CHECK(back.label == 1);
  CHECK(back.tolerances == std::vector<double>{1e-4});
  // The flags are the fields, '_' written '-'.
  const CliRun help = cli({"converge", "--help"});
  for (std::string n : names) {
    std::replace(n.begin(), n.end(), '_', '-');
    CHECK_THAT(help.out, Catch::Contains("--" + n + " "));
  }
  // A flag overrides the spec file, field by field.
  const fs::path dir = scratch("override");
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "spec.json");
    f << R"({"model": "ring2d", "samplers": "euler", "nfe": [4], "n": 4, "ref_tol": 1e-6})";
  }
  const CliRun r = cli({"converge", "--spec", (dir / "spec.json").string(), "--n", "5", "--nfe",
                        "4,8", "--quiet", "--json", "--out", (dir / "out").string()});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const json rep = json::parse(r.out);
  CHECK(rep["spec"]["n"] == 5);
  CHECK(rep["spec"]["nfe"] == json::array({4, 8}));
  CHECK(rep["spec"]["model"] == "ring2d");
  CHECK(rep["spec"]["ref_tol"] == 1e-6);
  // The cell kinds are an enum with one parse function; a stored cell of an unknown kind is
  // refused naming the file, the cell and --fresh.
  CHECK(parse_cell_kind("adaptive") == CellKind::Adaptive);
  CHECK(cell_kind_name(CellKind::Sde) == "sde");
  CHECK_THROWS_WITH(parse_cell_kind("ode45"), Catch::Contains("unknown cell kind 'ode45'"));
  std::string lines = read_text(dir / "out" / "results.jsonl");
  lines.replace(lines.find("\"ode\""), 5, "\"ode45\"");
  std::ofstream(dir / "out" / "results.jsonl", std::ios::trunc) << lines;
  const CliRun again = cli({"converge", "--spec", (dir / "spec.json").string(), "--n", "5", "--nfe",
                            "4,8", "--quiet", "--out", (dir / "out").string()});
  CHECK(again.rc == 2);
  CHECK_THAT(again.err, Catch::Contains("results.jsonl") && Catch::Contains("euler/nfe=4") &&
                            Catch::Contains("unknown cell kind 'ode45'") &&
                            Catch::Contains("--fresh"));
}

TEST_CASE("budgets that buy the same run count once in the order fit", "[converge]") {
  // lms starts with Runge-Kutta 4: 8 and 10 NFE are both 2 RK4 steps and 2 multistep steps.
  ConvergeSpec s;
  s.model = "gmm64";
  s.samplers = {"lms"};
  s.nfe = {8, 10, 20, 40, 80};
  s.n = 8;
  const ConvergeReport r = run_converge(s, scratch("same_nfe").string(), true);
  REQUIRE(r.summaries.size() == 1);
  const SamplerSummary& m = r.summaries[0];
  INFO(m.note);
  CHECK(m.fitted);
  CHECK(m.nfe.size() == 4);
  CHECK(std::adjacent_find(m.nfe.begin(), m.nfe.end()) == m.nfe.end());
}

// `sdekit fd`: the Frechet distance between two statistics files.
#include <iomanip>
#include <ostream>
#include <stdexcept>

#include "apps/command.hpp"
#include "experiments/frechet.hpp"
#include "experiments/stats_io.hpp"

namespace sdekit {
namespace {

int cmd_fd(const std::string& a, const std::string& b, std::ostream& out) {
  const StatsFile fa = read_stats_npz(a), fb = read_stats_npz(b);
  check_covariance(fa, a);
  check_covariance(fb, b);
  if (fa.mu.size(0) != fb.mu.size(0))
    throw std::invalid_argument("'" + a + "' has d = " + std::to_string(fa.mu.size(0)) + ", '" + b +
                                "' has d = " + std::to_string(fb.mu.size(0)));
  out << std::setprecision(10) << frechet_distance(fa.mu, fa.sigma, fb.mu, fb.sigma) << "\n";
  return 0;
}

class FdCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand("fd",
                              "Frechet distance between two statistics files "
                              "(.npz with mu and sigma, pytorch-fid)");
    sub_->add_option("A", a_, "First .npz")->required();
    sub_->add_option("B", b_, "Second .npz")->required();
  }
  int run(const std::string&, std::ostream& out, std::ostream&) override {
    return cmd_fd(a_, b_, out);
  }

 private:
  std::string a_, b_;
};
}  // namespace

std::unique_ptr<Command> make_fd_command() {
  return std::make_unique<FdCommand>();
}

}  // namespace sdekit

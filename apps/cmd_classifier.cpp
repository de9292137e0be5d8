// `sdekit classifier`: the Fashion-MNIST feature classifier, its accuracy and statistics; with
// --noisy, the noise-conditional classifier of classifier guidance and its accuracy across t.
#include <chrono>
#include <ostream>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "datasets/idx.hpp"
#include "experiments/frechet.hpp"
#include "experiments/stats_io.hpp"
#include "networks/classifier.hpp"
#include "networks/noisy_classifier.hpp"
#include "schedules/registry.hpp"

namespace sdekit {
namespace {
using namespace cli;

struct ClassifierArgs {
  ClassifierTraining c;
  std::string out = "out/classifier.pt";
  std::string stats;
  bool quiet = false;
  bool noisy = false;
  std::string sde = "vp-linear";
  std::string init;
  std::string t_eval = "0.001,0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1";
};

int cmd_noisy_classifier(const ClassifierArgs& a, std::ostream& out, std::ostream& err) {
  NoisyClassifierTraining cfg;
  cfg.sde = a.sde;
  cfg.epochs = a.c.epochs;
  cfg.batch = a.c.batch;
  cfg.lr = a.c.lr;
  cfg.seed = a.c.seed;
  cfg.init = a.init;
  cfg.validate(60000);
  if (!a.stats.empty())
    throw std::invalid_argument("--stats belongs to the feature classifier, not to --noisy");
  const auto ts = parse_number_list(a.t_eval, "--t-eval");
  const Interval dom = make_sde(a.sde)->domain();
  for (double t : ts)
    if (!(t > dom.lo) || t > dom.hi)
      throw std::invalid_argument("--t-eval: " + fmt(t) + " lies outside (" + fmt(dom.lo) + ", " +
                                  fmt(dom.hi) + "], the times of --sde " + a.sde);
  check_output_file("--out", a.out);
  const ImageDataset train_set = load_fashion_mnist("train"), test_set = load_fashion_mnist("test");
  const auto t0 = std::chrono::steady_clock::now();
  const auto clf =
      train_noisy_classifier(cfg, train_set.images, train_set.labels, [&](int64_t e, double loss) {
        if (!a.quiet)
          err << "epoch " << e << "/" << cfg.epochs << "  loss " << fmt(loss, 4) << "\n"
              << std::flush;
      });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  clf->save(a.out);
  out << "noise-conditional classifier (--sde " << a.sde << "): " << cfg.epochs << " epochs ("
      << fmt(secs, 3) << " s)" << (a.init.empty() ? "" : ", initialised from " + a.init)
      << "; wrote " << a.out << "\n"
      << "test accuracy on x_t = alpha(t) x0 + sigma(t) eps (" << test_set.images.size(0)
      << " Fashion-MNIST test images, noise seed 1):\n\n| t | alpha | sigma | accuracy |\n"
      << "|---|---|---|---|\n";
  const auto kernel = make_sde(a.sde)->schedule();
  for (double t : ts)
    out << "| " << fmt(t) << " | " << fmt(kernel->alpha(t)) << " | " << fmt(kernel->sigma(t))
        << " | " << fmt(100 * clf->accuracy_at(t, test_set.images, test_set.labels, 1), 4)
        << "% |\n";
  return 0;
}

int cmd_classifier(const ClassifierArgs& a, std::ostream& out, std::ostream& err) {
  if (a.noisy) return cmd_noisy_classifier(a, out, err);
  a.c.validate(60000);  // the training split's size; checked again against the data read
  check_output_file("--out", a.out);
  if (!a.stats.empty()) check_output_file("--stats", a.stats);
  const ImageDataset train_set = load_fashion_mnist("train"), test_set = load_fashion_mnist("test");
  const auto t0 = std::chrono::steady_clock::now();
  const auto clf =
      train_classifier(a.c, train_set.images, train_set.labels, [&](int64_t e, double loss) {
        if (!a.quiet)
          err << "epoch " << e << "/" << a.c.epochs << "  loss " << fmt(loss, 4) << "\n"
              << std::flush;
      });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double acc = clf->accuracy(test_set.images, test_set.labels);
  clf->save(a.out);
  out << "classifier: test accuracy " << fmt(100 * acc, 4) << "% on " << test_set.images.size(0)
      << " Fashion-MNIST test images after " << a.c.epochs << " epochs (" << fmt(secs, 3)
      << " s); wrote " << a.out << "\n";
  if (!a.stats.empty()) {
    GaussianStats st;
    st.add(clf->features(test_set.images));
    write_stats_npz(a.stats, st);
    out << "wrote " << a.stats << " (features of the " << st.count
        << " test images, d = " << st.dim() << ")\n";
  }
  return 0;
}

class ClassifierCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand("classifier",
                              "Train the Fashion-MNIST feature classifier; "
                              "report test accuracy; write stats");
    sub_->add_option("--epochs", a_.c.epochs, "Epochs")->capture_default_str();
    sub_->add_option("--batch", a_.c.batch, "Batch size")->capture_default_str();
    sub_->add_option("--lr", a_.c.lr, "Adam learning rate")->capture_default_str();
    sub_->add_option("--seed", a_.c.seed, "Seed")->capture_default_str();
    sub_->add_option("--out", a_.out, "Output file")->capture_default_str();
    sub_->add_option("--stats", a_.stats, "Also write the test set's feature statistics (.npz)");
    sub_->add_flag("--quiet", a_.quiet, "No progress lines on stderr");
    sub_->add_flag("--noisy", a_.noisy,
                   "Train the noise-conditional classifier p(y | x_t, t) of classifier guidance "
                   "instead, and report its accuracy across t");
    noisy_only_[0] =
        sub_->add_option("--sde", a_.sde, "--noisy: the SDE whose noised data it classifies")
            ->capture_default_str();
    noisy_only_[1] = sub_->add_option("--init", a_.init,
                                      "--noisy: start from a feature classifier's weights (e.g. "
                                      "data/fmnist/classifier.pt)");
    noisy_only_[2] =
        sub_->add_option("--t-eval", a_.t_eval, "--noisy: times at which the accuracy is reported")
            ->capture_default_str();
  }
  int run(const std::string&, std::ostream& out, std::ostream& err) override {
    if (!a_.noisy)
      for (const CLI::Option* o : noisy_only_)
        if (o->count() > 0)
          throw std::invalid_argument(o->get_name() +
                                      " applies to the noise-conditional classifier: add --noisy");
    return cmd_classifier(a_, out, err);
  }

 private:
  ClassifierArgs a_;
  CLI::Option* noisy_only_[3] = {};
};
}  // namespace

std::unique_ptr<Command> make_classifier_command() {
  return std::make_unique<ClassifierCommand>();
}

}  // namespace sdekit

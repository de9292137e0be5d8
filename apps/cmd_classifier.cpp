// `sdekit classifier`: the Fashion-MNIST feature classifier, its accuracy and statistics.
#include <chrono>
#include <ostream>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "datasets/idx.hpp"
#include "experiments/frechet.hpp"
#include "experiments/stats_io.hpp"
#include "networks/classifier.hpp"

namespace sdekit {
namespace {
using namespace cli;

struct ClassifierArgs {
  ClassifierTraining c;
  std::string out = "out/classifier.pt";
  std::string stats;
  bool quiet = false;
};

int cmd_classifier(const ClassifierArgs& a, std::ostream& out, std::ostream& err) {
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
  }
  int run(const std::string&, std::ostream& out, std::ostream& err) override {
    return cmd_classifier(a_, out, err);
  }

 private:
  ClassifierArgs a_;
};
}  // namespace

std::unique_ptr<Command> make_classifier_command() {
  return std::make_unique<ClassifierCommand>();
}

}  // namespace sdekit

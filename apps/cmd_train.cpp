// `sdekit train`: a score network by denoising score matching; checkpoints resume.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "models/builtin.hpp"
#include "networks/train.hpp"

namespace sdekit {
namespace {
using namespace cli;

struct TrainArgs {
  TrainConfig c;
  std::string param = "eps";
  double shift = 1.0;
  std::string channel_mult = "1,2,2";
  std::string arch;  // empty: unet for images, mlp otherwise
  std::string out = "out/train";
  bool resume = false, quiet = false;
  std::string command;
};

int cmd_train(TrainArgs& a, const CLI::App& cmd, std::ostream& out, std::ostream& err) {
  TrainConfig c = a.c;
  c.sde = sde_with_shift(c.sde, a.shift, cmd.get_option("--shift")->count() > 0);
  c.net.param = parse_param(a.param);
  const bool images = c.data == "fashion-mnist";
  c.net.arch = a.arch.empty() ? (images ? "unet" : "mlp") : a.arch;
  if (images) {
    c.net.event_shape = {1, 28, 28};
  } else if (c.data.rfind("mixture:", 0) == 0) {
    c.net.event_shape = {load_mixture(c.data.substr(8)).dim()};
  } else {
    c.net.event_shape = {2};
  }
  c.net.channel_mult.clear();
  for (double v : parse_number_list(a.channel_mult, "--channel-mult"))
    c.net.channel_mult.push_back(static_cast<int64_t>(v));
  if (cmd.get_option("--width")->count() == 0 && c.net.arch == "unet") c.net.width = 32;
  if (cmd.get_option("--depth")->count() == 0 && c.net.arch == "unet") c.net.depth = 2;
  c.validate();
  const bool quiet = a.quiet;
  const TrainResult r = train(c, a.out, a.resume, [&](const TrainProgress& p) {
    if (!quiet)
      err << "step " << p.step << "/" << p.steps << "  loss " << fmt(p.loss, 5) << "  "
          << fmt(p.steps_per_second, 3) << " steps/s  " << fmt(p.elapsed, 4) << " s\n"
          << std::flush;
  });
  const std::filesystem::path info = std::filesystem::path(a.out) / "train.json";
  if (r.steps == c.steps && std::filesystem::exists(info)) {  // record how it was made
    std::ifstream in(info);
    nlohmann::json j = nlohmann::json::parse(in);
    j["command"] = a.command;
    in.close();
    std::ofstream(info) << j.dump(2) << "\n";
  }
  out << "trained " << r.ema->name() << " on " << c.data << " (" << c.sde << ", "
      << param_name(c.net.param) << " target"
      << (c.net.num_classes > 0 ? ", class-conditional" : "") << "): steps " << r.resumed_from
      << " -> " << r.steps << " in " << fmt(r.seconds, 4) << " s, final loss "
      << fmt(r.final_loss, 5) << "\n";
  out << "wrote " << a.out << "/checkpoint.pt"
      << (r.steps == c.steps ? ", " + a.out + "/model.pt (EMA weights; --model net:" + a.out +
                                   "/model.pt), " + a.out + "/train.json"
                             : std::string())
      << "\n";
  return 0;
}

class TrainCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand("train",
                              "Train a score network (MLP or U-Net) by denoising "
                              "score matching; checkpoints resume");
    sub_->add_option("--data", a_.c.data,
                     "two-moons | swiss-roll | checkerboard | mixture:ring2d | mixture:gmm64 | "
                     "mixture:gmm:FILE.json | fashion-mnist")
        ->capture_default_str();
    sub_->add_option("--sde", a_.c.sde, "SDE whose kernel noises the data")->capture_default_str();
    sub_->add_option("--shift", a_.shift, "--sde flow: the time shift s")->capture_default_str();
    sub_->add_option(
            "--param", a_.param,
            "Target: eps | x0 | v | flow (u = eps - x0, with --sde flow the flow-matching loss)")
        ->capture_default_str();
    sub_->add_option("--arch", a_.arch, "mlp | unet (default: unet for images, mlp otherwise)");
    sub_->add_option("--classes", a_.c.net.num_classes,
                     "Class-conditional with this many classes (fashion-mnist: 10), 0: none")
        ->capture_default_str();
    sub_->add_option("--width", a_.c.net.width, "mlp: hidden units; unet: base channels (32)")
        ->capture_default_str();
    sub_->add_option("--depth", a_.c.net.depth, "mlp: residual blocks; unet: blocks per level (2)")
        ->capture_default_str();
    sub_->add_option("--channel-mult", a_.channel_mult, "unet: channel multipliers per level")
        ->capture_default_str();
    sub_->add_flag("--discrete", a_.c.discrete,
                   "Discrete times t = n/N (DDPM steps) instead of U(t_min, T)");
    sub_->add_option("--discrete-steps", a_.c.discrete_steps, "N for --discrete")
        ->capture_default_str();
    sub_->add_option("--weighting", a_.c.weighting, "none | min-snr")->capture_default_str();
    sub_->add_option("--steps", a_.c.steps, "Optimizer steps")->capture_default_str();
    sub_->add_option("--batch", a_.c.batch, "Batch size")->capture_default_str();
    sub_->add_option("--lr", a_.c.lr, "Adam learning rate")->capture_default_str();
    sub_->add_option("--warmup", a_.c.warmup, "Linear warm-up steps")->capture_default_str();
    sub_->add_option("--grad-clip", a_.c.grad_clip, "Gradient-norm clip")->capture_default_str();
    sub_->add_option("--ema", a_.c.ema_decay, "EMA decay")->capture_default_str();
    sub_->add_option("--label-dropout", a_.c.label_dropout, "P(label -> null) for guidance")
        ->capture_default_str();
    sub_->add_option("--seed", a_.c.seed, "Seed (weights, batches, times, noise)")
        ->capture_default_str();
    sub_->add_option("--device", a_.c.device, "cpu | cuda")->capture_default_str();
    sub_->add_option("--checkpoint-every", a_.c.checkpoint_every, "Steps between checkpoints")
        ->capture_default_str();
    sub_->add_option("--log-every", a_.c.log_every, "Steps between progress lines")
        ->capture_default_str();
    sub_->add_option("--out", a_.out, "Output folder")->capture_default_str();
    sub_->add_flag("--resume", a_.resume, "Continue from --out/checkpoint.pt (same config)");
    sub_->add_flag("--quiet", a_.quiet, "No progress lines on stderr");
  }
  int run(const std::string& command_line, std::ostream& out, std::ostream& err) override {
    a_.command = command_line;
    return cmd_train(a_, *sub_, out, err);
  }

 private:
  TrainArgs a_;
};
}  // namespace

std::unique_ptr<Command> make_train_command() {
  return std::make_unique<TrainCommand>();
}

}  // namespace sdekit

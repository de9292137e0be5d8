#include "apps/distill_cmd.hpp"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "apps/cli_common.hpp"
#include "distill/distill.hpp"
#include "models/builtin.hpp"

namespace sdekit {

namespace {
using cli::fmt;

// The student network of a teacher that is not a network: an MLP sized like `sdekit train`'s.
void student_shape(NetConfig& net, const std::string& data) {
  if (data == "fashion-mnist") {
    net.arch = "unet";
    net.event_shape = {1, 28, 28};
  } else if (data.rfind("mixture:", 0) == 0) {
    net.event_shape = {load_mixture(data.substr(8)).dim()};
  } else {
    net.event_shape = {2};
  }
}

void record_command(const std::filesystem::path& file, const std::string& command) {
  if (!std::filesystem::exists(file)) return;
  std::ifstream in(file);
  nlohmann::json j = nlohmann::json::parse(in);
  in.close();
  j["command"] = command;
  std::ofstream(file) << j.dump(2) << "\n";
}
}  // namespace

struct DistillCommand::Args {
  ConsistencyDistillConfig cd;
  ProgressiveDistillConfig pd;
  std::string student_param = "v";
  std::string out_cd = "out/cm", out_pd = "out/pd";
  bool fresh_student = false, resume = false, quiet = false;
};

DistillCommand::DistillCommand() : a_(std::make_unique<Args>()) {}

void DistillCommand::add_to(CLI::App& app) {
  Args& a = *a_;
  sub_ = cmd_ =
      app.add_subcommand("distill",
                         "Distill a few-step sampler from a teacher score model: a consistency "
                         "model or progressive-distillation students");
  cmd_->require_subcommand(1);
  cd_ = cmd_->add_subcommand("consistency",
                             "Consistency distillation: learn the teacher's PF-ODE solution map "
                             "(sample with --model cm:OUT/model.pt --sampler consistency)");
  pd_ = cmd_->add_subcommand("progressive",
                             "Progressive distillation: halve the DDIM steps round after round "
                             "(sample OUT/student_N.pt with --sampler ddim --steps N)");
  for (CLI::App* c : {cd_, pd_}) {
    const bool is_cd = c == cd_;
    std::string& teacher = is_cd ? a.cd.teacher : a.pd.teacher;
    std::string& data = is_cd ? a.cd.data : a.pd.data;
    NetConfig& net = is_cd ? a.cd.net : a.pd.net;
    c->add_option("--teacher", teacher,
                  "net:FILE.pt (a network of sdekit train) | fmnist | ring2d | gmm64 | "
                  "gmm:FILE.json")
        ->required();
    c->add_option("--data", data,
                  "Training data: two-moons | swiss-roll | checkerboard | mixture:NAME | "
                  "fashion-mnist")
        ->capture_default_str();
    c->add_option("--sde", is_cd ? a.cd.sde : a.pd.sde, "SDE of the teacher")
        ->capture_default_str();
    c->add_option("--t-end", is_cd ? a.cd.t_end : a.pd.t_end,
                  "End time of the trajectories (< 0: the SDE's default)")
        ->capture_default_str();
    c->add_flag("--fresh-student", a.fresh_student,
                "Start the student from fresh weights instead of the teacher's");
    c->add_option("--width", net.width, "Student MLP hidden units (teachers that are not networks)")
        ->capture_default_str();
    c->add_option("--depth", net.depth, "Student MLP residual blocks")->capture_default_str();
    c->add_option("--batch", is_cd ? a.cd.batch : a.pd.batch, "Batch size")->capture_default_str();
    c->add_option("--lr", is_cd ? a.cd.lr : a.pd.lr, "Adam learning rate")->capture_default_str();
    c->add_option("--warmup", is_cd ? a.cd.warmup : a.pd.warmup, "Linear warm-up steps")
        ->capture_default_str();
    c->add_option("--grad-clip", is_cd ? a.cd.grad_clip : a.pd.grad_clip, "Gradient-norm clip")
        ->capture_default_str();
    c->add_option("--seed", is_cd ? a.cd.seed : a.pd.seed, "Seed")->capture_default_str();
    c->add_option("--device", is_cd ? a.cd.device : a.pd.device, "cpu | cuda")
        ->capture_default_str();
    c->add_option("--checkpoint-every", is_cd ? a.cd.checkpoint_every : a.pd.checkpoint_every,
                  "Steps between checkpoints")
        ->capture_default_str();
    c->add_option("--log-every", is_cd ? a.cd.log_every : a.pd.log_every,
                  "Steps between progress lines")
        ->capture_default_str();
    c->add_option("--out", is_cd ? a.out_cd : a.out_pd, "Output folder")->capture_default_str();
    c->add_flag("--resume", a.resume, "Continue from --out/checkpoint.pt (same config)");
    c->add_flag("--quiet", a.quiet, "No progress lines on stderr");
  }
  cd_->add_option("--steps", a.cd.steps, "Optimizer steps")->capture_default_str();
  cd_->add_option("--N", a.cd.N, "Discretization points of [t_end, T]")->capture_default_str();
  cd_->add_option("--rho", a.cd.rho, "Discretization exponent (Karras)")->capture_default_str();
  cd_->add_option("--solver", a.cd.solver, "Teacher ODE step: euler | heun")->capture_default_str();
  cd_->add_option("--distance", a.cd.distance, "l2 | pseudo-huber")->capture_default_str();
  cd_->add_option("--huber-c", a.cd.huber_c, "Pseudo-Huber c (< 0: 0.00054 sqrt(dim))")
      ->capture_default_str();
  cd_->add_option("--sigma-data", a.cd.sigma_data, "sigma_d of the boundary coefficients")
      ->capture_default_str();
  cd_->add_option("--target-decay", a.cd.target_decay, "EMA rate mu of the target network")
      ->capture_default_str();
  cd_->add_option("--ema", a.cd.ema_decay, "EMA decay of the saved model")->capture_default_str();
  pd_->add_option("--steps-per-round", a.pd.steps_per_round, "Optimizer steps per round")
      ->capture_default_str();
  pd_->add_option("--teacher-steps", a.pd.teacher_steps, "DDIM steps of the first teacher")
      ->capture_default_str();
  pd_->add_option("--final-steps", a.pd.final_steps, "Steps of the last student")
      ->capture_default_str();
  pd_->add_option("--student-param", a.student_param, "What the students predict: eps | x0 | v")
      ->capture_default_str();
  pd_->add_option("--grid", a.pd.grid, "DDIM time grid (must nest when halved)")
      ->capture_default_str();
  pd_->add_option("--ema", a.pd.ema_decay, "EMA decay of the saved students (0: none)")
      ->capture_default_str();
}

DistillCommand::~DistillCommand() = default;

int DistillCommand::run(const std::string& command, std::ostream& out, std::ostream& err) {
  Args& a = *a_;
  const bool quiet = a.quiet;
  if (cd_->parsed()) {
    ConsistencyDistillConfig c = a.cd;
    c.init_from_teacher = !a.fresh_student;
    student_shape(c.net, c.data);
    const DistillResult r = distill_consistency(c, a.out_cd, a.resume, [&](const TrainProgress& p) {
      if (!quiet)
        err << "step " << p.step << "/" << p.steps << "  loss " << fmt(p.loss, 5) << "  "
            << fmt(p.steps_per_second, 3) << " steps/s  " << fmt(p.elapsed, 4) << " s\n"
            << std::flush;
    });
    const bool done = r.steps == c.steps;
    if (done) record_command(std::filesystem::path(a.out_cd) / "distill.json", command);
    out << "consistency distillation from " << c.teacher << " (" << c.solver << " teacher steps, N "
        << c.N << ", " << c.distance << "): steps " << r.resumed_from << " -> " << r.steps << " in "
        << fmt(r.seconds, 4) << " s, final loss " << fmt(r.final_loss, 5) << "\n";
    out << "wrote " << a.out_cd << "/checkpoint.pt"
        << (done ? ", " + a.out_cd + "/model.pt (--model cm:" + a.out_cd +
                       "/model.pt --sampler consistency), " + a.out_cd + "/distill.json"
                 : std::string())
        << "\n";
    return 0;
  }
  ProgressiveDistillConfig c = a.pd;
  c.init_from_teacher = !a.fresh_student;
  c.student_param = parse_param(a.student_param);
  student_shape(c.net, c.data);
  const ProgressiveResult r =
      distill_progressive(c, a.out_pd, a.resume, [&](int64_t n, const TrainProgress& p) {
        if (!quiet)
          err << "student " << n << " steps: step " << p.step << "/" << p.steps << "  loss "
              << fmt(p.loss, 5) << "  " << fmt(p.steps_per_second, 3) << " steps/s  "
              << fmt(p.elapsed, 4) << " s\n"
              << std::flush;
      });
  record_command(std::filesystem::path(a.out_pd) / "progressive.json", command);
  out << "progressive distillation from " << c.teacher << " (" << c.teacher_steps << " -> "
      << c.final_steps << " DDIM steps, " << c.steps_per_round << " steps per round, " << c.grid
      << " grid) in " << fmt(r.seconds, 4) << " s\n";
  for (const auto& round : r.rounds)
    out << "  student " << round.student_steps << " steps: final loss " << fmt(round.final_loss, 5)
        << ", " << fmt(round.seconds, 4) << " s -> " << round.file << " (--model net:" << round.file
        << " --sampler ddim --steps " << round.student_steps << " --grid " << c.grid << ")\n";
  return 0;
}

std::unique_ptr<Command> make_distill_command() {
  return std::make_unique<DistillCommand>();
}

}  // namespace sdekit

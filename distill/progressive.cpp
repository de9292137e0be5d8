#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "distill/detail/teacher.hpp"
#include "distill/distill.hpp"
#include "networks/detail/modules.hpp"
#include "networks/detail/train_common.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"

namespace sdekit {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ProgressiveDistillConfig::to_json() const {
  return json{{"teacher", teacher},
              {"net", json::parse(net.to_json())},
              {"init_from_teacher", init_from_teacher},
              {"student_param", param_name(student_param)},
              {"data", data},
              {"sde", sde},
              {"t_end", t_end},
              {"grid", grid},
              {"teacher_steps", teacher_steps},
              {"final_steps", final_steps},
              {"steps_per_round", steps_per_round},
              {"batch", batch},
              {"lr", lr},
              {"warmup", warmup},
              {"grad_clip", grad_clip},
              {"ema_decay", ema_decay},
              {"seed", seed},
              {"device", device},
              {"checkpoint_every", checkpoint_every},
              {"log_every", log_every}}
      .dump();
}

void ProgressiveDistillConfig::validate() const {
  auto bad = [](const std::string& m) {
    return std::invalid_argument("progressive distillation: " + m);
  };
  if (!init_from_teacher || detail::teacher_network_file(teacher).empty()) net.validate();
  if (student_param != Param::Eps && student_param != Param::X0 && student_param != Param::V)
    throw bad("student_param must be eps, x0 or v");
  const SDEPtr s = make_sde(sde);
  if (!s->schedule()) throw bad("SDE '" + sde + "' has no Gaussian kernel (alpha, sigma)");
  parse_grid(grid);
  if (final_steps < 1) throw bad("final_steps must be >= 1");
  int64_t r = teacher_steps;
  while (r > final_steps && r % 2 == 0) r /= 2;
  if (teacher_steps <= final_steps || r != final_steps)
    throw bad("teacher_steps must be final_steps times a power of 2 (>= 2), got teacher_steps " +
              std::to_string(teacher_steps) + ", final_steps " + std::to_string(final_steps));
  detail::validate_optimization("progressive distillation", "steps_per_round", steps_per_round,
                                batch, lr, warmup, grad_clip, ema_decay, checkpoint_every,
                                log_every);
}

namespace {
std::string student_file(const std::string& dir, int64_t n) {
  return (fs::path(dir) / ("student_" + std::to_string(n) + ".pt")).string();
}
}  // namespace

ProgressiveResult distill_progressive(
    const ProgressiveDistillConfig& c, const std::string& dir, bool resume,
    const std::function<void(int64_t, const TrainProgress&)>& progress, int64_t stop_after) {
  c.validate();
  const std::string ckpt = detail::prepare_output(dir, "distillation");
  const SDEPtr sde = make_sde(c.sde);
  const SchedulePtr k = sde->schedule();
  const double T = sde->domain().hi;
  const double t_end = c.t_end < 0 ? sde->default_t_end() : c.t_end;
  const GridKind kind = parse_grid(c.grid);
  const torch::Device dev(c.device);

  auto original = std::make_unique<detail::Teacher>(c.teacher, k, c.device);
  NetConfig net_config = c.net;
  const bool from_teacher = c.init_from_teacher && original->network();
  if (from_teacher) net_config = original->network()->config();
  net_config.param = c.student_param;
  if (net_config.event_shape != original->event_shape())
    throw std::invalid_argument(
        "progressive distillation: the student's event_shape differs from the teacher's");
  if (net_config.num_classes != original->num_classes())
    throw std::invalid_argument(
        "progressive distillation: the student must be class-conditional exactly when the "
        "teacher is");
  detail::DataSource data(c.data, net_config, "progressive distillation");

  // Rounds: student steps teacher_steps / 2, ..., final_steps.
  std::vector<int64_t> rounds;
  for (int64_t n = c.teacher_steps / 2; n >= c.final_steps; n /= 2) rounds.push_back(n);

  ProgressiveResult res;
  int64_t round = 0, step = 0;
  auto student = std::make_shared<Network>(net_config, c.seed);
  auto ema = std::make_shared<Network>(net_config, c.seed);
  student->to(c.device);
  ema->to(c.device);
  auto opt = std::make_unique<torch::optim::Adam>(student->impl().net->parameters(),
                                                  torch::optim::AdamOptions(c.lr));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  detail::LossLog log;
  auto state_of = [&] {
    return detail::CheckpointState{{{"student", student.get()}, {"ema", ema.get()}},
                                   opt.get(),
                                   &gen,
                                   &log,
                                   {{"step", step}, {"round", round}}};
  };
  // The teacher of round r: the original for r = 0, else the student of round r - 1 (saved).
  auto teacher_of = [&](int64_t r) {
    if (r == 0) return std::move(original);
    const std::string f = student_file(dir, rounds[static_cast<size_t>(r - 1)]);
    if (!fs::exists(f))
      throw std::invalid_argument("progressive distillation: the student of the previous round, '" +
                                  f + "', is missing");
    return std::make_unique<detail::Teacher>(Network::load(f, c.device), k);
  };
  std::unique_ptr<detail::Teacher> teacher;
  if (resume) {
    auto st = state_of();
    // The round is read first: the networks of a later round start from another teacher.
    detail::read_checkpoint(ckpt, c.to_json(), st, {});
    step = st.counters["step"];
    round = st.counters["round"];
    res.resumed_from = round * c.steps_per_round + step;
    if (round > 0) original.reset();
    teacher = teacher_of(round);
  } else {
    teacher = teacher_of(0);
  }
  auto start_round = [&] {
    // The student starts from its teacher (the first one: when init_from_teacher).
    if (teacher->network() && (round > 0 || from_teacher)) student->copy_from(*teacher->network());
    ema->copy_from(*student);
    opt = std::make_unique<torch::optim::Adam>(student->impl().net->parameters(),
                                               torch::optim::AdamOptions(c.lr));
    log = {};
    step = 0;
  };
  if (!resume) start_round();

  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  int64_t done_here = 0;
  const auto B = static_cast<size_t>(c.batch);
  std::vector<double> tv(B), tpv(B), tppv(B), av(B), sv(B), apv(B), spv(B), appv(B), sppv(B), wv(B);
  bool stopped = false;
  while (round < static_cast<int64_t>(rounds.size()) && !stopped) {
    const int64_t N = rounds[static_cast<size_t>(round)];
    const auto gN = make_time_grid(kind, *k, static_cast<int>(N), T, t_end);
    const auto g2N = make_time_grid(kind, *k, static_cast<int>(2 * N), T, t_end);
    for (int64_t i = 0; i <= N; ++i) {
      const double a = gN[static_cast<size_t>(i)], b = g2N[static_cast<size_t>(2 * i)];
      if (std::abs(a - b) > 1e-9 * std::max(1.0, std::abs(a)))
        throw std::invalid_argument("progressive distillation: grid '" + c.grid + "' with " +
                                    std::to_string(N) + " steps is not nested in its " +
                                    std::to_string(2 * N) + "-step grid");
    }
    const double round_start = elapsed();
    log.window_start = round_start;
    student->train_mode(true);
    while (step < c.steps_per_round) {
      auto [x0, y] = data.batch(c.batch, gen);
      const at::Tensor idx = at::randint(0, N, {c.batch}, gen, at::kLong);
      const at::Tensor eps = at::randn(x0.sizes(), gen, at::kFloat);
      const int64_t* ip = idx.data_ptr<int64_t>();
      for (size_t r = 0; r < B; ++r) {
        const auto i = static_cast<size_t>(ip[r]);
        tv[r] = gN[i], tpv[r] = g2N[2 * i + 1], tppv[r] = gN[i + 1];
        av[r] = k->alpha(tv[r]), sv[r] = k->sigma(tv[r]);
        apv[r] = k->alpha(tpv[r]), spv[r] = k->sigma(tpv[r]);
        appv[r] = k->alpha(tppv[r]), sppv[r] = k->sigma(tppv[r]);
        wv[r] = std::max(av[r] * av[r] / (sv[r] * sv[r]), 1.0);
      }
      x0 = x0.to(dev);
      if (y.defined()) y = y.to(dev);
      const at::Tensor a = detail::rows_like(av, x0), s = detail::rows_like(sv, x0),
                       ap = detail::rows_like(apv, x0), sp = detail::rows_like(spv, x0),
                       app = detail::rows_like(appv, x0), spp = detail::rows_like(sppv, x0);
      const at::Tensor t = at::tensor(tv, at::kDouble), tp = at::tensor(tpv, at::kDouble);
      const at::Tensor z = a * x0 + s * eps.to(dev);
      at::Tensor target;
      {
        // Two DDIM steps of the teacher: z_t -> z_t' -> z_t''.
        torch::NoGradGuard ng;
        const at::Tensor xh = teacher->predict(Param::X0, z, t, y, a, s);
        const at::Tensor zp = ap * xh + sp / s * (z - a * xh);
        const at::Tensor xhp = teacher->predict(Param::X0, zp, tp, y, ap, sp);
        const at::Tensor zpp = app * xhp + spp / sp * (zp - ap * xhp);
        const at::Tensor r = spp / s;
        target = (zpp - r * z) / (app - r * a);
      }
      const at::Tensor raw = student->forward(z, t.to(dev), y);
      const at::Tensor xs = convert(raw, c.student_param, Param::X0, z, a, s);
      const at::Tensor per_row = (xs - target).pow(2).reshape({c.batch, -1}).mean(1) *
                                 at::tensor(wv, at::kDouble).to(dev, at::kFloat);
      const at::Tensor loss = per_row.mean();
      detail::optimizer_step(*opt, *student, loss, c.lr, c.warmup, step, c.grad_clip);
      if (c.ema_decay > 0) detail::ema_update(*ema, *student, c.ema_decay, step, true);
      ++step;
      ++done_here;
      const double lv = loss.item<double>();
      if (!std::isfinite(lv))
        throw std::runtime_error("progressive distillation: the loss became " + std::to_string(lv) +
                                 " at step " + std::to_string(step) + " of the " +
                                 std::to_string(N) +
                                 "-step round (lower lr or grad_clip); the last checkpoint is "
                                 "kept in '" +
                                 ckpt + "'");
      if (const auto p = log.add(lv, step, c.steps_per_round,
                                 step % c.log_every == 0 || step == c.steps_per_round, elapsed()))
        if (progress) progress(N, *p);
      const bool stop = stop_after >= 0 && done_here >= stop_after;
      if (step % c.checkpoint_every == 0 || step == c.steps_per_round || stop) {
        if (step == c.steps_per_round) {
          // The round's student first, so a checkpoint never points past a missing file.
          (c.ema_decay > 0 ? *ema : *student).save(student_file(dir, N));
        }
        auto st = state_of();
        detail::write_checkpoint(ckpt, c.to_json(), st);
      }
      if (stop) {
        stopped = true;
        break;
      }
    }
    if (step < c.steps_per_round) break;  // stopped inside the round
    student->train_mode(false);
    res.rounds.push_back(ProgressiveRound{N, student_file(dir, N),
                                          log.entries.empty() ? 0.0 : log.entries.back().second,
                                          elapsed() - round_start});
    res.loss_log = log.entries;
    res.final_loss = res.rounds.back().final_loss;
    res.steps = step;
    if (round + 1 < static_cast<int64_t>(rounds.size())) {
      ++round;
      teacher = teacher_of(round);
      start_round();
      if (!(stopped = stop_after >= 0 && done_here >= stop_after)) continue;
      auto st = state_of();
      detail::write_checkpoint(ckpt, c.to_json(), st);
    } else {
      ++round;
    }
  }
  res.seconds = elapsed();
  if (round >= static_cast<int64_t>(rounds.size())) {
    json jr = json::array();
    for (const auto& r : res.rounds)
      jr.push_back({{"student_steps", r.student_steps},
                    {"file", fs::path(r.file).filename().string()},
                    {"final_loss", r.final_loss},
                    {"seconds", r.seconds}});
    std::ofstream f(fs::path(dir) / "progressive.json");
    f << json{{"method", "progressive distillation"},
              {"config", json::parse(c.to_json())},
              {"rounds", jr},
              {"resumed_from", res.resumed_from},
              {"seconds_this_run", res.seconds}}
             .dump(2)
      << "\n";
  }
  return res;
}

}  // namespace sdekit

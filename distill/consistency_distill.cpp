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

std::string ConsistencyDistillConfig::to_json() const {
  return json{{"teacher", teacher},
              {"net", json::parse(net.to_json())},
              {"init_from_teacher", init_from_teacher},
              {"data", data},
              {"sde", sde},
              {"t_end", t_end},
              {"sigma_data", sigma_data},
              {"N", N},
              {"rho", rho},
              {"solver", solver},
              {"distance", distance},
              {"huber_c", huber_c},
              {"target_decay", target_decay},
              {"ema_decay", ema_decay},
              {"steps", steps},
              {"batch", batch},
              {"lr", lr},
              {"warmup", warmup},
              {"grad_clip", grad_clip},
              {"seed", seed},
              {"device", device},
              {"checkpoint_every", checkpoint_every},
              {"log_every", log_every}}
      .dump();
}

void ConsistencyDistillConfig::validate() const {
  auto bad = [](const std::string& m) {
    return std::invalid_argument("consistency distillation: " + m);
  };
  if (!init_from_teacher || detail::teacher_network_file(teacher).empty()) net.validate();
  const SDEPtr s = make_sde(sde);
  if (!s->schedule()) throw bad("SDE '" + sde + "' has no Gaussian kernel (alpha, sigma)");
  if (N < 2) throw bad("N must be >= 2, got " + std::to_string(N));
  if (!(rho > 0)) throw bad("rho must be > 0");
  if (solver != "euler" && solver != "heun")
    throw bad("solver must be euler or heun, got '" + solver + "'");
  if (distance != "l2" && distance != "pseudo-huber")
    throw bad("distance must be l2 or pseudo-huber, got '" + distance + "'");
  if (!(sigma_data > 0)) throw bad("sigma_data must be > 0");
  if (!(target_decay >= 0 && target_decay < 1)) throw bad("target_decay must lie in [0, 1)");
  detail::validate_optimization("consistency distillation", "steps", steps, batch, lr, warmup,
                                grad_clip, ema_decay, checkpoint_every, log_every);
}

DistillResult distill_consistency(const ConsistencyDistillConfig& c, const std::string& dir,
                                  bool resume,
                                  const std::function<void(const TrainProgress&)>& progress,
                                  int64_t stop_after) {
  c.validate();
  const std::string ckpt = detail::prepare_output(dir, "distillation");
  const SDEPtr sde = make_sde(c.sde);
  const SchedulePtr k = sde->schedule();
  const double T = sde->domain().hi;
  const double t_end = c.t_end < 0 ? sde->default_t_end() : c.t_end;
  const detail::Teacher teacher(c.teacher, k, c.device);

  NetConfig net_config = c.net;
  const bool from_teacher = c.init_from_teacher && teacher.network();
  if (from_teacher) net_config = teacher.network()->config();
  if (net_config.event_shape != teacher.event_shape())
    throw std::invalid_argument(
        "consistency distillation: the student's event_shape differs from "
        "the teacher's");
  if (net_config.num_classes != teacher.num_classes())
    throw std::invalid_argument(
        "consistency distillation: the student must be class-conditional exactly when the teacher "
        "is (teacher classes " +
        std::to_string(teacher.num_classes()) + ", student " +
        std::to_string(net_config.num_classes) + ")");
  detail::DataSource data(c.data, net_config, "consistency distillation");
  if (teacher.num_classes() > 0 && !data.labelled())
    throw std::invalid_argument(
        "consistency distillation: a class-conditional teacher needs "
        "labelled data (fashion-mnist)");

  auto make_cm = [&](uint64_t seed) {
    auto net = std::make_shared<Network>(net_config, seed);
    if (from_teacher) net->copy_from(*teacher.network());
    net->to(c.device);
    return std::make_shared<ConsistencyModel>(net, c.sde, t_end, c.sigma_data);
  };
  const auto online = make_cm(c.seed), target = make_cm(c.seed), ema = make_cm(c.seed);
  target->network().copy_from(online->network());
  ema->network().copy_from(online->network());
  target->network().train_mode(false);
  ema->network().train_mode(false);
  torch::optim::Adam opt(online->network().impl().net->parameters(),
                         torch::optim::AdamOptions(c.lr));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);

  // t_0 = t_end < t_1 < ... < t_{N-1} = T (the grid kinds run from the noise side).
  std::vector<double> grid = make_time_grid(GridKind::Karras, *k, static_cast<int>(c.N - 1), T,
                                            t_end, GridOptions{c.rho, {}, {}});
  std::reverse(grid.begin(), grid.end());
  std::vector<double> alpha(grid.size()), sigma(grid.size()), level(grid.size());
  for (size_t i = 0; i < grid.size(); ++i) {
    alpha[i] = k->alpha(grid[i]);
    sigma[i] = k->sigma(grid[i]);
    level[i] = sigma[i] / alpha[i];
  }
  int64_t dim = 1;
  for (int64_t d : net_config.event_shape) dim *= d;
  const double huber_c = c.huber_c < 0 ? 0.00054 * std::sqrt(static_cast<double>(dim)) : c.huber_c;

  DistillResult res;
  detail::LossLog log;
  detail::CheckpointState state{
      {{"net", &online->network()}, {"target", &target->network()}, {"ema", &ema->network()}},
      &opt,
      &gen,
      &log,
      {{"step", 0}}};
  int64_t step = 0;
  if (resume) {
    detail::read_checkpoint(ckpt, c.to_json(), state);
    step = state.counters["step"];
    res.resumed_from = step;
  }

  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const torch::Device dev(c.device);
  int64_t done_here = 0;
  online->network().train_mode(true);
  const auto B = static_cast<size_t>(c.batch);
  std::vector<double> t_hi(B), t_lo(B), a_hi(B), a_lo(B), s_hi(B), s_lo(B), dlev(B);
  while (step < c.steps) {
    auto [x0, y] = data.batch(c.batch, gen);
    const at::Tensor n = at::randint(0, c.N - 1, {c.batch}, gen, at::kLong);
    const at::Tensor z = at::randn(x0.sizes(), gen, at::kFloat);
    const int64_t* np = n.data_ptr<int64_t>();
    for (size_t i = 0; i < B; ++i) {
      const auto lo = static_cast<size_t>(np[i]), hi = lo + 1;
      t_hi[i] = grid[hi], t_lo[i] = grid[lo];
      a_hi[i] = alpha[hi], a_lo[i] = alpha[lo];
      s_hi[i] = sigma[hi], s_lo[i] = sigma[lo];
      dlev[i] = level[lo] - level[hi];
    }
    x0 = x0.to(dev);
    if (y.defined()) y = y.to(dev);
    const at::Tensor ah = detail::rows_like(a_hi, x0), al = detail::rows_like(a_lo, x0),
                     sh = detail::rows_like(s_hi, x0), sl = detail::rows_like(s_lo, x0),
                     dl = detail::rows_like(dlev, x0);
    const at::Tensor th = at::tensor(t_hi, at::kDouble), tl = at::tensor(t_lo, at::kDouble);
    const at::Tensor x_hi = ah * x0 + sh * z.to(dev);
    at::Tensor x_lo;
    {
      // One teacher step of dx~/ds = eps in x~ = x / alpha from s(t_{n+1}) to s(t_n).
      torch::NoGradGuard ng;
      const at::Tensor e1 = teacher.predict(Param::Eps, x_hi, th, y, ah, sh);
      const at::Tensor xt = x_hi / ah;
      at::Tensor xt_lo = xt + dl * e1;
      if (c.solver == "heun") {
        const at::Tensor e2 = teacher.predict(Param::Eps, al * xt_lo, tl, y, al, sl);
        xt_lo = xt + dl * (e1 + e2) * 0.5;
      }
      x_lo = al * xt_lo;
    }
    at::Tensor tgt;
    {
      torch::NoGradGuard ng;
      tgt = target->forward(x_lo, tl.to(dev), y);
    }
    const at::Tensor out = online->forward(x_hi, th.to(dev), y);
    const at::Tensor sq = (out - tgt).pow(2).reshape({c.batch, -1});
    const at::Tensor per_row =
        c.distance == "l2" ? sq.mean(1) : (sq.sum(1) + huber_c * huber_c).sqrt() - huber_c;
    const at::Tensor loss = per_row.mean();
    detail::optimizer_step(opt, online->network(), loss, c.lr, c.warmup, step, c.grad_clip);
    detail::ema_update(target->network(), online->network(), c.target_decay, step, false);
    detail::ema_update(ema->network(), online->network(), c.ema_decay, step, true);
    ++step;
    ++done_here;
    const double lv = loss.item<double>();
    if (!std::isfinite(lv))
      throw std::runtime_error("consistency distillation: the loss became " + std::to_string(lv) +
                               " at step " + std::to_string(step) +
                               " (lower lr or grad_clip); the last checkpoint is kept in '" + ckpt +
                               "'");
    if (const auto p =
            log.add(lv, step, c.steps, step % c.log_every == 0 || step == c.steps, elapsed()))
      if (progress) progress(*p);
    const bool stop = stop_after >= 0 && done_here >= stop_after;
    if (step % c.checkpoint_every == 0 || step == c.steps || stop) {
      state.counters["step"] = step;
      detail::write_checkpoint(ckpt, c.to_json(), state);
    }
    if (stop) break;
  }
  online->network().train_mode(false);
  res.steps = step;
  res.loss_log = log.entries;
  res.final_loss = log.entries.empty() ? 0.0 : log.entries.back().second;
  res.seconds = elapsed();
  if (step == c.steps) {
    ema->save((fs::path(dir) / "model.pt").string());
    json jl = json::array();
    for (const auto& [s, l] : res.loss_log) jl.push_back({s, l});
    std::ofstream f(fs::path(dir) / "distill.json");
    f << json{{"method", "consistency distillation"},
              {"config", json::parse(c.to_json())},
              {"teacher", teacher.name()},
              {"discretization", grid},
              {"steps", step},
              {"resumed_from", res.resumed_from},
              {"seconds_this_run", res.seconds},
              {"final_loss", res.final_loss},
              {"parameters", online->network().parameter_count()},
              {"loss_log", jl}}
             .dump(2)
      << "\n";
  }
  return res;
}

}  // namespace sdekit

#include "networks/train.hpp"

#include "models/resources.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "datasets/idx.hpp"
#include "datasets/toy.hpp"
#include "models/builtin.hpp"
#include "networks/detail/modules.hpp"
#include "networks/detail/train_common.hpp"
#include "schedules/registry.hpp"

namespace sdekit {

namespace fs = std::filesystem;
using nlohmann::json;

std::string TrainConfig::to_json() const {
  return json{{"net", json::parse(net.to_json())},
              {"data", data},
              {"sde", sde},
              {"discrete", discrete},
              {"discrete_steps", discrete_steps},
              {"weighting", weighting},
              {"steps", steps},
              {"batch", batch},
              {"lr", lr},
              {"warmup", warmup},
              {"grad_clip", grad_clip},
              {"ema_decay", ema_decay},
              {"label_dropout", label_dropout},
              {"t_min", t_min},
              {"seed", seed},
              {"device", device},
              {"checkpoint_every", checkpoint_every},
              {"log_every", log_every}}
      .dump();
}

TrainConfig TrainConfig::from_json(const std::string& text, const std::string& source) {
  TrainConfig c;
  try {
    const json j = json::parse(text);
    c.net = NetConfig::from_json(j.at("net").dump(), source);
    c.data = j.at("data").get<std::string>();
    c.sde = j.at("sde").get<std::string>();
    c.discrete = j.at("discrete").get<bool>();
    c.discrete_steps = j.at("discrete_steps").get<int64_t>();
    c.weighting = j.at("weighting").get<std::string>();
    c.steps = j.at("steps").get<int64_t>();
    c.batch = j.at("batch").get<int64_t>();
    c.lr = j.at("lr").get<double>();
    c.warmup = j.at("warmup").get<int64_t>();
    c.grad_clip = j.at("grad_clip").get<double>();
    c.ema_decay = j.at("ema_decay").get<double>();
    c.label_dropout = j.at("label_dropout").get<double>();
    c.t_min = j.at("t_min").get<double>();
    c.seed = j.at("seed").get<uint64_t>();
    c.device = j.at("device").get<std::string>();
    c.checkpoint_every = j.at("checkpoint_every").get<int64_t>();
    c.log_every = j.at("log_every").get<int64_t>();
  } catch (const json::exception& e) {
    throw std::invalid_argument(source + ": bad training config (" + e.what() + ")");
  }
  return c;
}

void TrainConfig::validate() const {
  auto bad = [](const std::string& m) { return std::invalid_argument("training: " + m); };
  net.validate();
  const SDEPtr s = make_sde(sde);
  if (!s->schedule()) throw bad("SDE '" + sde + "' has no Gaussian kernel to noise data with");
  if (weighting != "none" && weighting != "min-snr")
    throw bad("weighting must be none or min-snr, got '" + weighting + "'");
  detail::validate_optimization("training", "steps", steps, batch, lr, warmup, grad_clip, ema_decay,
                                checkpoint_every, log_every);
  if (!(label_dropout >= 0 && label_dropout <= 1)) throw bad("label_dropout must lie in [0, 1]");
  if (discrete && discrete_steps < 1) throw bad("discrete_steps must be >= 1");
  const bool images = data == "fashion-mnist";
  if (images && net.event_shape != std::vector<int64_t>{1, 28, 28})
    throw bad("fashion-mnist needs a network with event_shape {1, 28, 28}");
  if (!images && net.num_classes > 0)
    throw bad("data '" + data + "' has no labels; use num_classes = 0");
  if (images && net.num_classes != 0 && net.num_classes != 10)
    throw bad("fashion-mnist has 10 classes; num_classes must be 0 or 10");
  // Activations kept for the backward pass, per row: a U-Net holds about 16 float32 maps of
  // width x mult channels per block and level at full resolution (an upper bound); an MLP a few
  // dozen vectors of its width per block.
  double D = 1, mult = 0;
  for (int64_t v : net.event_shape) D *= double(v);
  for (int64_t m : net.channel_mult) mult += double(m);
  const double per_row = net.arch == "unet" ? 64.0 * D * net.width * mult * net.depth
                                            : 4.0 * (64.0 * net.width * net.depth + 16.0 * D);
  require_memory("training: batch " + std::to_string(batch), double(batch) * per_row);
}

TrainResult train(const TrainConfig& c, const std::string& dir, bool resume,
                  const std::function<void(const TrainProgress&)>& progress, int64_t stop_after) {
  c.validate();
  const std::string ckpt = detail::prepare_output(dir, "training");
  const SDEPtr sde = make_sde(c.sde);
  const SchedulePtr k = sde->schedule();
  const double T = sde->domain().hi;
  const double t_min = c.t_min < 0 ? sde->default_t_end() : c.t_min;
  detail::DataSource data(c.data, c.net);

  TrainResult res;
  res.net = std::make_shared<Network>(c.net, c.seed);
  res.ema = std::make_shared<Network>(c.net, c.seed);
  res.ema->copy_from(*res.net);
  res.net->to(c.device);
  res.ema->to(c.device);
  res.ema->train_mode(false);
  torch::optim::Adam opt(res.net->impl().net->parameters(), torch::optim::AdamOptions(c.lr));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  int64_t step = 0;
  detail::LossLog log;
  detail::CheckpointState state{
      {{"net", res.net.get()}, {"ema", res.ema.get()}}, &opt, &gen, &log, {{"step", 0}}};
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
  res.net->train_mode(true);
  std::vector<double> alpha(static_cast<size_t>(c.batch)), sigma(alpha.size());
  while (step < c.steps) {
    auto [x0, y] = data.batch(c.batch, gen);
    at::Tensor t;
    if (c.discrete) {
      t = at::randint(1, c.discrete_steps + 1, {c.batch}, gen, at::kLong).to(at::kDouble) /
          static_cast<double>(c.discrete_steps);
    } else {
      t = at::rand({c.batch}, gen, at::kDouble) * (T - t_min) + t_min;
    }
    const at::Tensor eps = at::randn(x0.sizes(), gen, at::kFloat);
    const auto* tp = t.data_ptr<double>();
    for (int64_t i = 0; i < c.batch; ++i) {
      alpha[static_cast<size_t>(i)] = k->alpha(tp[i]);
      sigma[static_cast<size_t>(i)] = k->sigma(tp[i]);
    }
    std::vector<int64_t> bshape(static_cast<size_t>(x0.dim()), 1);
    bshape[0] = c.batch;
    const at::Tensor a = at::tensor(alpha, at::kDouble).to(at::kFloat).reshape(bshape),
                     s = at::tensor(sigma, at::kDouble).to(at::kFloat).reshape(bshape);
    if (y.defined() && c.net.num_classes > 0) {
      const at::Tensor drop = at::rand({c.batch}, gen, at::kDouble) < c.label_dropout;
      y = at::where(drop, at::full_like(y, c.net.num_classes), y);
    } else {
      y = at::Tensor();
    }
    const at::Tensor xt = a * x0 + s * eps;
    at::Tensor target;
    switch (c.net.param) {
      case Param::Eps:
        target = eps;
        break;
      case Param::X0:
        target = x0;
        break;
      case Param::Flow:  // the flow-matching loss: the velocity u = eps - x0
        target = eps - x0;
        break;
      default:
        target = a * eps - s * x0;
        break;
    }
    at::Tensor w;  // per-row weight
    if (c.weighting == "min-snr") {
      const at::Tensor snr = (a * a / (s * s)).reshape({c.batch});
      at::Tensor conv;  // eps-MSE = conv * target-MSE
      const at::Tensor a1 = a.reshape({c.batch}), s1 = s.reshape({c.batch});
      if (c.net.param == Param::Eps)
        conv = at::ones_like(snr);
      else if (c.net.param == Param::X0)
        conv = snr;
      else if (c.net.param == Param::Flow)  // eps - eps_hat = alpha / (alpha + sigma) (u - u_hat)
        conv = (a1 / (a1 + s1)).pow(2);
      else
        conv = a1 * a1 / (a1 * a1 + s1 * s1).pow(2);
      w = at::clamp_max(snr, 5.0) / snr * conv;
    }
    const at::Tensor pred = res.net->forward(xt.to(dev), t.to(dev), y.defined() ? y.to(dev) : y);
    at::Tensor per_row = (pred - target.to(dev)).pow(2).reshape({c.batch, -1}).mean(1);
    if (w.defined()) per_row = per_row * w.to(dev);
    const at::Tensor loss = per_row.mean();
    detail::optimizer_step(opt, *res.net, loss, c.lr, c.warmup, step, c.grad_clip);
    detail::ema_update(*res.ema, *res.net, c.ema_decay, step);
    ++step;
    ++done_here;
    const double lv = loss.item<double>();
    if (!std::isfinite(lv))
      throw std::runtime_error("training: the loss became " + std::to_string(lv) + " at step " +
                               std::to_string(step) +
                               " (lower lr or grad_clip); the last "
                               "checkpoint is kept in '" +
                               ckpt + "'");
    if (const auto p =
            log.add(lv, step, c.steps, step % c.log_every == 0 || step == c.steps, elapsed())) {
      res.final_loss = p->loss;
      if (progress) progress(*p);
    }
    const bool stop = stop_after >= 0 && done_here >= stop_after;
    if (step % c.checkpoint_every == 0 || step == c.steps || stop) {
      state.counters["step"] = step;
      detail::write_checkpoint(ckpt, c.to_json(), state);
    }
    if (stop) break;
  }
  res.net->train_mode(false);
  res.steps = step;
  res.loss_log = log.entries;
  if (done_here == 0 && !res.loss_log.empty()) res.final_loss = res.loss_log.back().second;
  res.seconds = elapsed();
  if (step == c.steps) {
    res.ema->save((fs::path(dir) / "model.pt").string());
    json jl = json::array();
    for (const auto& [s, l] : res.loss_log) jl.push_back({s, l});
    std::ofstream out(fs::path(dir) / "train.json");
    out << json{{"config", json::parse(c.to_json())},
                {"steps", step},
                {"resumed_from", res.resumed_from},
                {"seconds_this_run", res.seconds},
                {"final_loss", res.final_loss},
                {"parameters", res.net->parameter_count()},
                {"loss_log", jl}}
               .dump(2)
        << "\n";
  }
  return res;
}

}  // namespace sdekit

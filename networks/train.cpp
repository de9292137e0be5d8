#include "networks/train.hpp"

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
  if (steps < 1 || batch < 1) throw bad("steps and batch must be >= 1");
  if (!(lr > 0)) throw bad("lr must be > 0");
  if (warmup < 0) throw bad("warmup must be >= 0");
  if (!(grad_clip > 0)) throw bad("grad_clip must be > 0");
  if (!(ema_decay >= 0 && ema_decay < 1)) throw bad("ema_decay must lie in [0, 1)");
  if (!(label_dropout >= 0 && label_dropout <= 1)) throw bad("label_dropout must lie in [0, 1]");
  if (discrete && discrete_steps < 1) throw bad("discrete_steps must be >= 1");
  if (checkpoint_every < 1 || log_every < 1) throw bad("checkpoint_every, log_every must be >= 1");
  const bool images = data == "fashion-mnist";
  if (images && net.event_shape != std::vector<int64_t>{1, 28, 28})
    throw bad("fashion-mnist needs a network with event_shape {1, 28, 28}");
  if (!images && net.num_classes > 0)
    throw bad("data '" + data + "' has no labels; use num_classes = 0");
  if (images && net.num_classes != 0 && net.num_classes != 10)
    throw bad("fashion-mnist has 10 classes; num_classes must be 0 or 10");
}

namespace {

// Draws training batches: (x0 [B, ...] float32, y [B] int64 or undefined).
class DataSource {
 public:
  DataSource(const TrainConfig& c) : c_(c) {
    if (c.data == "fashion-mnist") {
      images_ = load_fashion_mnist("train");
    } else if (c.data.rfind("mixture:", 0) == 0) {
      mixture_ = load_mixture(c.data.substr(8));
      if (c.net.event_shape != std::vector<int64_t>{mixture_->dim()})
        throw std::invalid_argument("training: mixture '" + c.data.substr(8) +
                                    "' has D = " + std::to_string(mixture_->dim()) +
                                    "; the network's event_shape must be {D}");
    } else {
      const auto& names = toy_dataset_names();
      if (std::find(names.begin(), names.end(), c.data) == names.end()) {
        std::string valid = "fashion-mnist, mixture:ring2d, mixture:gmm64, mixture:gmm:FILE";
        for (const auto& n : names) valid += ", " + n;
        throw std::invalid_argument("training: unknown data '" + c.data + "'; valid: " + valid);
      }
      if (c.net.event_shape != std::vector<int64_t>{2})
        throw std::invalid_argument("training: '" + c.data +
                                    "' is 2-D; the network's event_shape must be {2}");
    }
  }
  std::pair<at::Tensor, at::Tensor> batch(int64_t B, at::Generator& gen) {
    if (images_) {
      const at::Tensor idx = at::randint(images_->images.size(0), {B}, gen, at::kLong);
      return {images_->images.index_select(0, idx), images_->labels.index_select(0, idx)};
    }
    if (mixture_) return {mixture_->sample(B, 1.0, 0.0, gen, at::kFloat), at::Tensor()};
    return {toy_dataset(c_.data, B, gen).to(at::kFloat), at::Tensor()};
  }

 private:
  const TrainConfig& c_;
  std::optional<ImageDataset> images_;
  std::optional<GaussianMixture> mixture_;
};

std::vector<std::string> config_diff(const std::string& a, const std::string& b) {
  json ja = json::parse(a), jb = json::parse(b);
  ja.erase("steps");
  jb.erase("steps");
  std::vector<std::string> out;
  for (auto it = ja.begin(); it != ja.end(); ++it)
    if (!jb.contains(it.key()) || jb[it.key()] != it.value())
      out.push_back(it.key() + ": checkpoint " + it.value().dump() + ", now " +
                    (jb.contains(it.key()) ? jb[it.key()].dump() : std::string("(absent)")));
  return out;
}

void write_checkpoint(const std::string& path, const TrainConfig& c, int64_t step,
                      const Network& net, const Network& ema, torch::optim::Adam& opt,
                      const at::Generator& gen, const std::vector<std::pair<int64_t, double>>& log,
                      double window, int64_t window_n) {
  torch::serialize::OutputArchive ar, a_net, a_ema, a_opt;
  ar.write("config", torch::IValue(c.to_json()));
  ar.write("step", torch::IValue(step));
  net.impl().net->save(a_net);
  ema.impl().net->save(a_ema);
  opt.save(a_opt);
  ar.write("net", a_net);
  ar.write("ema", a_ema);
  ar.write("optimizer", a_opt);
  ar.write("rng", gen.get_state());
  at::Tensor l = at::zeros({static_cast<int64_t>(log.size()), 2}, at::kDouble);
  for (size_t i = 0; i < log.size(); ++i) {
    l[static_cast<int64_t>(i)][0] = static_cast<double>(log[i].first);
    l[static_cast<int64_t>(i)][1] = log[i].second;
  }
  ar.write("loss_log", l);
  // The partial log window, so that a resumed run logs the same means.
  ar.write("window", at::tensor({window, static_cast<double>(window_n)}, at::kDouble));
  const std::string tmp = path + ".tmp";
  try {
    ar.save_to(tmp);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot write checkpoint '" + tmp +
                             "': " + e.what_without_backtrace());
  }
  fs::rename(tmp, path);
}

}  // namespace

TrainResult train(const TrainConfig& c, const std::string& dir, bool resume,
                  const std::function<void(const TrainProgress&)>& progress, int64_t stop_after) {
  c.validate();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw std::invalid_argument("training output folder '" + dir + "': cannot create it");
  const std::string ckpt = (fs::path(dir) / "checkpoint.pt").string();
  const SDEPtr sde = make_sde(c.sde);
  const SchedulePtr k = sde->schedule();
  const double T = sde->domain().hi;
  const double t_min = c.t_min < 0 ? sde->default_t_end() : c.t_min;
  DataSource data(c);

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
  double window = 0;
  int64_t window_n = 0;

  if (resume) {
    if (!fs::exists(ckpt)) throw std::invalid_argument("resume: no checkpoint at '" + ckpt + "'");
    torch::serialize::InputArchive ar, a_net, a_ema, a_opt;
    try {
      ar.load_from(ckpt);
    } catch (const c10::Error& e) {
      throw std::invalid_argument("resume: cannot read '" + ckpt + "' (" +
                                  e.what_without_backtrace() + ")");
    }
    torch::IValue cfg, st;
    if (!ar.try_read("config", cfg) || !ar.try_read("step", st))
      throw std::invalid_argument("resume: '" + ckpt + "' is not an sdekit checkpoint");
    const auto diff = config_diff(cfg.toStringRef(), c.to_json());
    if (!diff.empty()) {
      std::string msg = "resume: the checkpoint '" + ckpt + "' was trained with another config:";
      for (const auto& d : diff) msg += "\n  " + d;
      throw std::invalid_argument(msg);
    }
    step = st.toInt();
    ar.read("net", a_net);
    ar.read("ema", a_ema);
    ar.read("optimizer", a_opt);
    res.net->impl().net->load(a_net);
    res.ema->impl().net->load(a_ema);
    opt.load(a_opt);
    at::Tensor rng, l;
    ar.read("rng", rng);
    gen.set_state(rng);
    ar.read("loss_log", l);
    for (int64_t i = 0; i < l.size(0); ++i)
      res.loss_log.emplace_back(static_cast<int64_t>(l[i][0].item<double>()),
                                l[i][1].item<double>());
    at::Tensor wtensor;
    if (ar.try_read("window", wtensor)) {
      window = wtensor[0].item<double>();
      window_n = static_cast<int64_t>(wtensor[1].item<double>());
    }
    res.resumed_from = step;
  }

  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const torch::Device dev(c.device);
  int64_t done_here = 0;
  double window_start = 0;
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
      else
        conv = a1 * a1 / (a1 * a1 + s1 * s1).pow(2);
      w = at::clamp_max(snr, 5.0) / snr * conv;
    }
    const at::Tensor pred = res.net->forward(xt.to(dev), t.to(dev), y.defined() ? y.to(dev) : y);
    at::Tensor per_row = (pred - target.to(dev)).pow(2).reshape({c.batch, -1}).mean(1);
    if (w.defined()) per_row = per_row * w.to(dev);
    const at::Tensor loss = per_row.mean();
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(res.net->impl().net->parameters(), c.grad_clip);
    const double lr_now =
        c.warmup > 0 ? c.lr * std::min(1.0, static_cast<double>(step + 1) / c.warmup) : c.lr;
    for (auto& g : opt.param_groups())
      static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr_now);
    opt.step();
    {
      torch::NoGradGuard ng;
      const double d = std::min(
          c.ema_decay, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
      const auto src = res.net->impl().net->parameters(), dst = res.ema->impl().net->parameters();
      for (size_t i = 0; i < src.size(); ++i) dst[i].mul_(d).add_(src[i], 1.0 - d);
    }
    ++step;
    ++done_here;
    const double lv = loss.item<double>();
    if (!std::isfinite(lv))
      throw std::runtime_error("training: the loss became " + std::to_string(lv) + " at step " +
                               std::to_string(step) +
                               " (lower lr or grad_clip); the last "
                               "checkpoint is kept in '" +
                               ckpt + "'");
    window += lv;
    ++window_n;
    if (step % c.log_every == 0 || step == c.steps) {
      res.loss_log.emplace_back(step, window / window_n);
      res.final_loss = window / window_n;
      const double now = elapsed();
      if (progress)
        progress(TrainProgress{step, c.steps, window / window_n,
                               window_n / std::max(1e-9, now - window_start), now});
      window = 0;
      window_n = 0;
      window_start = now;
    }
    const bool stop = stop_after >= 0 && done_here >= stop_after;
    if (step % c.checkpoint_every == 0 || step == c.steps || stop)
      write_checkpoint(ckpt, c, step, *res.net, *res.ema, opt, gen, res.loss_log, window, window_n);
    if (stop) break;
  }
  res.net->train_mode(false);
  res.steps = step;
  if (done_here == 0 && !res.loss_log.empty()) res.final_loss = res.loss_log.back().second;
  res.seconds = elapsed();
  if (step == c.steps) {
    res.ema->save((fs::path(dir) / "model.pt").string());
    json log = json::array();
    for (const auto& [s, l] : res.loss_log) log.push_back({s, l});
    std::ofstream out(fs::path(dir) / "train.json");
    out << json{{"config", json::parse(c.to_json())},
                {"steps", step},
                {"resumed_from", res.resumed_from},
                {"seconds_this_run", res.seconds},
                {"final_loss", res.final_loss},
                {"parameters", res.net->parameter_count()},
                {"loss_log", log}}
               .dump(2)
        << "\n";
  }
  return res;
}

}  // namespace sdekit

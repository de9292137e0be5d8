#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "datasets/toy.hpp"
#include "models/builtin.hpp"
#include "models/resources.hpp"
#include "networks/detail/modules.hpp"
#include "networks/detail/train_common.hpp"
#include "networks/module_check.hpp"

namespace sdekit::detail {

namespace fs = std::filesystem;
using nlohmann::json;

DataSource::DataSource(const std::string& data, const NetConfig& net, const std::string& who)
    : data_(data) {
  if (data == "fashion-mnist") {
    images_ = load_fashion_mnist("train");
  } else if (data.rfind("mixture:", 0) == 0) {
    mixture_ = load_mixture(data.substr(8));
    if (net.event_shape != std::vector<int64_t>{mixture_->dim()})
      throw std::invalid_argument(who + ": mixture '" + data.substr(8) +
                                  "' has D = " + std::to_string(mixture_->dim()) +
                                  "; the network's event_shape must be {D}");
  } else {
    const auto& names = toy_dataset_names();
    if (std::find(names.begin(), names.end(), data) == names.end()) {
      std::string valid = "fashion-mnist, mixture:ring2d, mixture:gmm64, mixture:gmm:FILE";
      for (const auto& n : names) valid += ", " + n;
      throw std::invalid_argument(who + ": unknown data '" + data + "'; valid: " + valid);
    }
    if (net.event_shape != std::vector<int64_t>{2})
      throw std::invalid_argument(who + ": '" + data +
                                  "' is 2-D; the network's event_shape must be {2}");
  }
}

std::pair<at::Tensor, at::Tensor> DataSource::batch(int64_t B, at::Generator& gen) {
  if (images_) {
    const at::Tensor idx = at::randint(images_->images.size(0), {B}, gen, at::kLong);
    return {images_->images.index_select(0, idx), images_->labels.index_select(0, idx)};
  }
  if (mixture_) return {mixture_->sample(B, 1.0, 0.0, gen, at::kFloat), at::Tensor()};
  return {toy_dataset(data_, B, gen).to(at::kFloat), at::Tensor()};
}

std::vector<std::string> config_diff(const std::string& a, const std::string& b,
                                     const std::vector<std::string>& ignore) {
  json ja = json::parse(a), jb = json::parse(b);
  for (const auto& k : ignore) {
    ja.erase(k);
    jb.erase(k);
  }
  std::vector<std::string> out;
  for (auto it = ja.begin(); it != ja.end(); ++it)
    if (!jb.contains(it.key()) || jb[it.key()] != it.value())
      out.push_back(it.key() + ": checkpoint " + it.value().dump() + ", now " +
                    (jb.contains(it.key()) ? jb[it.key()].dump() : std::string("(absent)")));
  for (auto it = jb.begin(); it != jb.end(); ++it)
    if (!ja.contains(it.key()))
      out.push_back(it.key() + ": checkpoint (absent), now " + it.value().dump());
  return out;
}

void write_checkpoint(const std::string& path, const std::string& config_json,
                      const CheckpointState& s) {
  torch::serialize::OutputArchive ar;
  ar.write("config", torch::IValue(config_json));
  for (const auto& [name, value] : s.counters) ar.write(name, torch::IValue(value));
  for (const auto& [name, net] : s.nets) {
    torch::serialize::OutputArchive a;
    net->impl().net->save(a);
    ar.write(name, a);
  }
  if (s.optimizer) {
    torch::serialize::OutputArchive a;
    s.optimizer->save(a);
    ar.write("optimizer", a);
  }
  if (s.generator) ar.write("rng", s.generator->get_state());
  if (s.log) {
    const auto& log = s.log->entries;
    at::Tensor l = at::zeros({static_cast<int64_t>(log.size()), 2}, at::kDouble);
    for (size_t i = 0; i < log.size(); ++i) {
      l[static_cast<int64_t>(i)][0] = static_cast<double>(log[i].first);
      l[static_cast<int64_t>(i)][1] = log[i].second;
    }
    ar.write("loss_log", l);
    // The partial log window, so that a resumed run logs the same means.
    ar.write("window",
             at::tensor({s.log->window, static_cast<double>(s.log->window_n)}, at::kDouble));
  }
  const std::string tmp = path + ".tmp";
  try {
    ar.save_to(tmp);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot write checkpoint '" + tmp +
                             "': " + e.what_without_backtrace());
  }
  fs::rename(tmp, path);
}

void read_checkpoint(const std::string& path, const std::string& config_json, CheckpointState& s,
                     const std::vector<std::string>& ignore) {
  if (!fs::exists(path)) throw std::invalid_argument("resume: no checkpoint at '" + path + "'");
  check_archive_file(path, "resume: checkpoint '" + path + "'");
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw std::invalid_argument("resume: cannot read '" + path + "' (" +
                                e.what_without_backtrace() + ")");
  }
  torch::IValue cfg;
  if (!ar.try_read("config", cfg) || !cfg.isString())
    throw std::invalid_argument("resume: '" + path + "' is not an sdekit checkpoint");
  const auto diff = config_diff(cfg.toStringRef(), config_json, ignore);
  if (!diff.empty()) {
    std::string msg = "resume: the checkpoint '" + path + "' was trained with another config:";
    for (const auto& d : diff) msg += "\n  " + d;
    throw std::invalid_argument(msg);
  }
  try {
    for (auto& [name, value] : s.counters) {
      torch::IValue v;
      if (!ar.try_read(name, v))
        throw std::invalid_argument("resume: '" + path + "' has no '" + name + "'");
      value = v.toInt();
    }
    for (const auto& [name, net] : s.nets) {
      torch::serialize::InputArchive a;
      if (!ar.try_read(name, a))
        throw std::invalid_argument("resume: '" + path + "' has no network '" + name + "'");
      net->impl().net->load(a);
    }
    if (s.optimizer) {
      torch::serialize::InputArchive a;
      ar.read("optimizer", a);
      s.optimizer->load(a);
    }
    if (s.generator) {
      at::Tensor rng;
      ar.read("rng", rng);
      s.generator->set_state(rng);
    }
    if (s.log) {
      at::Tensor l;
      ar.read("loss_log", l);
      s.log->entries.clear();
      for (int64_t i = 0; i < l.size(0); ++i)
        s.log->entries.emplace_back(static_cast<int64_t>(l[i][0].item<double>()),
                                    l[i][1].item<double>());
      at::Tensor w;
      if (ar.try_read("window", w)) {
        s.log->window = w[0].item<double>();
        s.log->window_n = static_cast<int64_t>(w[1].item<double>());
      }
    }
  } catch (const c10::Error& e) {
    throw std::invalid_argument("resume: '" + path + "' is damaged or incomplete (" +
                                e.what_without_backtrace() + ")");
  }
}

std::optional<TrainProgress> LossLog::add(double loss, int64_t step, int64_t steps, bool close,
                                          double now) {
  window += loss;
  ++window_n;
  if (!close) return std::nullopt;
  const double mean = window / static_cast<double>(window_n);
  entries.emplace_back(step, mean);
  const TrainProgress p{step, steps, mean,
                        static_cast<double>(window_n) / std::max(1e-9, now - window_start), now};
  window = 0;
  window_n = 0;
  window_start = now;
  return p;
}

void validate_optimization(const std::string& who, const std::string& steps_field, int64_t steps,
                           int64_t batch, double lr, int64_t warmup, double grad_clip,
                           double ema_decay, int64_t checkpoint_every, int64_t log_every) {
  auto bad = [&](const std::string& m) { return std::invalid_argument(who + ": " + m); };
  if (steps < 1 || batch < 1) throw bad(steps_field + " and batch must be >= 1");
  if (!(lr > 0) || !std::isfinite(lr)) throw bad("lr must be finite and > 0");
  // A floor of a few KiB of activations per row; the callers estimate their networks' own.
  require_memory(who + ": batch " + std::to_string(batch), double(batch) * 4096.0);
  if (warmup < 0) throw bad("warmup must be >= 0");
  if (!(grad_clip > 0)) throw bad("grad_clip must be > 0");
  if (!(ema_decay >= 0 && ema_decay < 1)) throw bad("ema_decay must lie in [0, 1)");
  if (checkpoint_every < 1 || log_every < 1) throw bad("checkpoint_every, log_every must be >= 1");
}

std::string prepare_output(const std::string& dir, const std::string& who) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw std::invalid_argument(who + " output folder '" + dir + "': cannot create it");
  return (fs::path(dir) / "checkpoint.pt").string();
}

void optimizer_step(torch::optim::Adam& opt, Network& net, const at::Tensor& loss, double lr,
                    int64_t warmup, int64_t step, double grad_clip) {
  opt.zero_grad();
  loss.backward();
  torch::nn::utils::clip_grad_norm_(net.impl().net->parameters(), grad_clip);
  const double lr_now =
      warmup > 0 ? lr * std::min(1.0, static_cast<double>(step + 1) / warmup) : lr;
  for (auto& g : opt.param_groups())
    static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr_now);
  opt.step();
}

void ema_update(Network& ema, const Network& net, double decay, int64_t step, bool warm) {
  torch::NoGradGuard ng;
  const double d =
      warm ? std::min(decay, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)))
           : decay;
  const auto src = net.impl().net->parameters(), dst = ema.impl().net->parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].mul_(d).add_(src[i], 1.0 - d);
}

at::Tensor rows_like(const std::vector<double>& v, const at::Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = static_cast<int64_t>(v.size());
  return at::tensor(v, at::kDouble).to(x.device(), x.scalar_type()).reshape(shape);
}

}  // namespace sdekit::detail

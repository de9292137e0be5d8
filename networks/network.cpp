#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "models/resources.hpp"
#include "networks/detail/modules.hpp"
#include "networks/module_check.hpp"

namespace sdekit {

using nlohmann::json;

std::string NetConfig::to_json() const {
  return json{{"arch", arch},
              {"event_shape", event_shape},
              {"param", param_name(param)},
              {"num_classes", num_classes},
              {"width", width},
              {"depth", depth},
              {"channel_mult", channel_mult},
              {"groups", groups},
              {"time_dim", time_dim},
              {"time_scale", time_scale}}
      .dump();
}

NetConfig NetConfig::from_json(const std::string& text, const std::string& source) {
  NetConfig c;
  try {
    const json j = json::parse(text);
    c.arch = j.at("arch").get<std::string>();
    c.event_shape = j.at("event_shape").get<std::vector<int64_t>>();
    c.param = parse_param(j.at("param").get<std::string>());
    c.num_classes = j.at("num_classes").get<int64_t>();
    c.width = j.at("width").get<int64_t>();
    c.depth = j.at("depth").get<int64_t>();
    c.channel_mult = j.at("channel_mult").get<std::vector<int64_t>>();
    c.groups = j.at("groups").get<int64_t>();
    c.time_dim = j.at("time_dim").get<int64_t>();
    c.time_scale = j.at("time_scale").get<double>();
  } catch (const json::exception& e) {
    throw std::invalid_argument(source + ": bad network config (" + e.what() + ")");
  }
  c.validate();
  return c;
}

void NetConfig::validate() const {
  auto bad = [](const std::string& m) { return std::invalid_argument("network config: " + m); };
  if (arch != "mlp" && arch != "unet") throw bad("arch must be mlp or unet, got '" + arch + "'");
  if (param != Param::Eps && param != Param::X0 && param != Param::V && param != Param::Flow)
    throw bad("param must be eps, x0, v or flow, got " + param_name(param));
  if (arch == "mlp" && (event_shape.size() != 1 || event_shape[0] < 1))
    throw bad("an mlp needs event_shape {D}");
  if (arch == "unet" && (event_shape.size() != 3 || event_shape[0] < 1))
    throw bad("a unet needs event_shape {C, H, W}");
  if (arch == "unet") {
    int64_t h = event_shape[1], w = event_shape[2];
    if (channel_mult.empty()) throw bad("channel_mult is empty");
    for (size_t i = 0; i + 1 < channel_mult.size(); ++i) {
      if (h < 2 || w < 2) throw bad("too many levels for the image size");
      h = (h + 1) / 2;
      w = (w + 1) / 2;
    }
    for (int64_t m : channel_mult)
      if (m < 1 || (width * m) % groups != 0)
        throw bad("width x channel_mult must be a multiple of groups (" + std::to_string(groups) +
                  ")");
  }
  if (num_classes < 0) throw bad("num_classes must be >= 0");
  if (width < 1 || depth < 1) throw bad("width and depth must be >= 1");
  if (time_dim < 2 || time_dim % 2) throw bad("time_dim must be even and >= 2");
  // The parameters (float32, with Adam's two moments and the EMA while training): an upper bound
  // of about 9 x width^2 x mult^2 per block and level for a U-Net, width^2 per block for an MLP.
  double mult2 = 0, D = 1;
  for (int64_t m : channel_mult) mult2 += double(m) * double(m);
  for (int64_t v : event_shape) D *= double(v);
  const double w = double(width), params = arch == "unet" ? 40.0 * w * w * mult2 * double(depth)
                                                          : 4.0 * w * w * double(depth) +
                                                                2.0 * w * (D + double(time_dim));
  require_memory(
      "network config: width " + std::to_string(width) + ", depth " + std::to_string(depth),
      16.0 * params + 4.0 * double(time_dim) * double(num_classes + 1));
}

Network::Network(const NetConfig& config, uint64_t seed)
    : config_(config), impl_(std::make_unique<Impl>()) {
  config_.validate();
  torch::manual_seed(seed);
  impl_->net = config_.arch == "mlp" ? detail::make_mlp(config_) : detail::make_unet(config_);
}

Network::~Network() = default;

std::string Network::name() const {
  std::ostringstream os;
  os << config_.arch << " (" << param_name(config_.param) << ", " << parameter_count()
     << " parameters" << (config_.num_classes > 0 ? ", class-conditional" : "") << ")";
  return os.str();
}

at::Tensor Network::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  std::vector<int64_t> want = {x.size(0)};
  want.insert(want.end(), config_.event_shape.begin(), config_.event_shape.end());
  if (x.sizes() != at::IntArrayRef(want)) {
    std::ostringstream os;
    os << "network " << config_.arch << ": expected input " << at::IntArrayRef(want) << ", got "
       << x.sizes();
    throw std::invalid_argument(os.str());
  }
  return impl_->net->forward(x, t.reshape({-1}).expand({x.size(0)}), y);
}

at::Tensor Network::predict(const at::Tensor& x, const at::Tensor& t) {
  at::Tensor y;
  if (config_.num_classes > 0)
    y = at::full({x.size(0)}, config_.num_classes, x.options().dtype(at::kLong));
  return predict(x, t, y);
}

at::Tensor Network::predict(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  c10::InferenceMode guard;
  const auto dev = impl_->net->parameters().front().device();
  at::Tensor yy = y.defined() ? y.to(dev, at::kLong) : y;
  return forward(x.to(dev), t.to(dev), yy).to(x.device(), x.scalar_type());
}

at::Tensor Network::predict_grad(const at::Tensor& x, const at::Tensor& t) {
  at::Tensor y;
  if (config_.num_classes > 0)
    y = at::full({x.size(0)}, config_.num_classes, x.options().dtype(at::kLong));
  return predict_grad(x, t, y);
}

at::Tensor Network::predict_grad(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  const at::Tensor p = impl_->net->parameters().front();  // a copy: parameters() is a temporary
  at::Tensor yy = y.defined() ? y.to(p.device(), at::kLong) : y;
  return forward(x.to(p.device(), p.scalar_type()), t.to(p.device(), p.scalar_type()), yy)
      .to(x.device(), x.scalar_type());
}

int64_t Network::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : impl_->net->parameters()) n += p.numel();
  return n;
}

std::vector<at::Tensor> Network::parameters() const {
  return impl_->net->parameters();
}

void Network::copy_from(const Network& other) {
  torch::NoGradGuard g;
  const auto a = impl_->net->named_parameters(), b = other.impl_->net->named_parameters();
  for (const auto& kv : b) a[kv.key()].copy_(kv.value());
  const auto ab = impl_->net->named_buffers(), bb = other.impl_->net->named_buffers();
  for (const auto& kv : bb) ab[kv.key()].copy_(kv.value());
}

void Network::to(const std::string& device) {
  impl_->net->to(torch::Device(device));
}

std::string Network::device() const {
  return impl_->net->parameters().front().device().str();
}

void Network::train_mode(bool on) {
  impl_->net->train(on);
}

void Network::save(const std::string& path) const {
  torch::serialize::OutputArchive ar;
  ar.write("config", torch::IValue(config_.to_json()));
  torch::serialize::OutputArchive weights;
  impl_->net->save(weights);
  ar.write("weights", weights);
  try {
    ar.save_to(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot write network '" + path + "': " + e.what_without_backtrace());
  }
}

std::shared_ptr<Network> Network::load(const std::string& path, const std::string& device) {
  check_archive_file(path, "network '" + path + "'");
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw std::invalid_argument("cannot read network '" + path +
                                "': " + e.what_without_backtrace());
  }
  torch::IValue cfg;
  if (!ar.try_read("config", cfg) || !cfg.isString())
    throw std::invalid_argument("'" + path + "' is not an sdekit network (no config)");
  const NetConfig config = NetConfig::from_json(cfg.toStringRef(), path);
  auto net = std::make_shared<Network>(config, 0);
  torch::serialize::InputArchive weights;
  if (!ar.try_read("weights", weights))
    throw std::invalid_argument("'" + path + "' holds no weights");
  try {
    net->impl_->net->load(weights);
  } catch (const c10::Error& e) {
    throw std::invalid_argument("'" + path + "': weights do not match the config (" +
                                e.what_without_backtrace() + ")");
  }
  net->to(device);
  net->train_mode(false);
  return net;
}

}  // namespace sdekit

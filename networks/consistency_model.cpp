#include "networks/consistency_model.hpp"

#include "networks/module_check.hpp"

#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "networks/detail/modules.hpp"
#include "schedules/registry.hpp"

namespace sdekit {

namespace {
SchedulePtr kernel_of(const std::string& sde) {
  const SDEPtr s = make_sde(sde);
  if (!s->schedule())
    throw std::invalid_argument("consistency model: SDE '" + sde +
                                "' has no Gaussian kernel (alpha, sigma)");
  return s->schedule();
}
}  // namespace

ConsistencyModel::ConsistencyModel(std::shared_ptr<Network> net, const std::string& sde,
                                   double t_end, double sigma_data)
    : net_(std::move(net)), sde_(sde), boundary_(kernel_of(sde), t_end, sigma_data) {
  if (!net_) throw std::invalid_argument("consistency model: no network");
}

std::string ConsistencyModel::name() const {
  std::ostringstream os;
  os << "consistency model on " << net_->name() << ", " << sde_ << ", t_end " << boundary_.t_end();
  return os.str();
}

at::Tensor ConsistencyModel::forward(const at::Tensor& x, const at::Tensor& t,
                                     const at::Tensor& y) {
  const at::Tensor tt = t.reshape({-1}).expand({x.size(0)});
  const auto [cx, cf] = boundary_.at(tt);
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  const at::Tensor F = net_->forward(x, tt, y);
  return cx.to(x.scalar_type()).reshape(shape) * x + cf.to(F.scalar_type()).reshape(shape) * F;
}

at::Tensor ConsistencyModel::predict(const at::Tensor& x, const at::Tensor& t) {
  at::Tensor y;
  if (num_classes() > 0) y = at::full({x.size(0)}, num_classes(), x.options().dtype(at::kLong));
  return predict(x, t, y);
}

at::Tensor ConsistencyModel::predict_at(const at::Tensor& x, double t) {
  return predict(x, at::full({x.size(0)}, t, x.options().dtype(at::kDouble)));
}

at::Tensor ConsistencyModel::predict(const at::Tensor& x, const at::Tensor& t,
                                     const at::Tensor& y) {
  c10::InferenceMode guard;
  const auto dev = torch::Device(net_->device());
  const at::Tensor xd = x.to(dev, at::kFloat);
  const at::Tensor out = forward(xd, t.to(dev), y.defined() ? y.to(dev, at::kLong) : y);
  return out.to(x.device(), x.scalar_type());
}

void ConsistencyModel::save(const std::string& path) const {
  torch::serialize::OutputArchive ar, weights;
  ar.write("config", torch::IValue(net_->config().to_json()));
  ar.write("consistency",
           torch::IValue(nlohmann::json{
               {"sde", sde_}, {"t_end", boundary_.t_end()}, {"sigma_data", boundary_.sigma_data()}}
                             .dump()));
  net_->impl().net->save(weights);
  ar.write("weights", weights);
  try {
    ar.save_to(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot write consistency model '" + path +
                             "': " + e.what_without_backtrace());
  }
}

std::shared_ptr<ConsistencyModel> ConsistencyModel::load(const std::string& path,
                                                         const std::string& device) {
  check_archive_file(path, "consistency model '" + path + "'");
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw std::invalid_argument("cannot read consistency model '" + path +
                                "': " + e.what_without_backtrace());
  }
  torch::IValue cm;
  if (!ar.try_read("consistency", cm) || !cm.isString())
    throw std::invalid_argument("'" + path +
                                "' is not a consistency model (no boundary record; a score "
                                "network is loaded with net:FILE)");
  std::string sde;
  double t_end = 0, sigma_data = 0;
  try {
    const auto j = nlohmann::json::parse(cm.toStringRef());
    sde = j.at("sde").get<std::string>();
    t_end = j.at("t_end").get<double>();
    sigma_data = j.at("sigma_data").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("'" + path + "': bad boundary record (" + e.what() + ")");
  }
  const auto net = Network::load(path, device);  // config and weights, checked
  return std::make_shared<ConsistencyModel>(net, sde, t_end, sigma_data);
}

}  // namespace sdekit

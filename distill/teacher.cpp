#include <filesystem>
#include <stdexcept>

#include "distill/detail/teacher.hpp"
#include "models/builtin.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/param.hpp"
#include "networks/loader.hpp"

namespace sdekit::detail {

namespace fs = std::filesystem;

std::string teacher_network_file(const std::string& spec) {
  if (spec == "fmnist") return (fs::path(sdekit_data_dir()) / "fmnist" / "unet.pt").string();
  if (spec.rfind("net:", 0) == 0) return spec.substr(4);
  return "";
}

Teacher::Teacher(const std::string& spec, SchedulePtr kernel, const std::string& device)
    : kernel_(std::move(kernel)) {
  const std::string file = teacher_network_file(spec);
  if (!file.empty()) {
    if (!fs::exists(file))
      throw std::invalid_argument("teacher '" + spec + "': file '" + file + "' does not exist");
    net_ = Network::load(file, device);
    event_shape_ = net_->config().event_shape;
    return;
  }
  try {
    GaussianMixture mix = load_mixture(spec);
    event_shape_ = {mix.dim()};
    analytic_ = std::make_shared<GaussianMixtureModel>(std::move(mix), kernel_);
  } catch (const std::exception& e) {
    throw std::invalid_argument("teacher '" + spec +
                                "': expected net:FILE.pt, fmnist or a mixture (ring2d, gmm64, "
                                "gmm:FILE.json): " +
                                e.what());
  }
}

Teacher::Teacher(std::shared_ptr<Network> net, SchedulePtr kernel)
    : net_(std::move(net)), kernel_(std::move(kernel)) {
  event_shape_ = net_->config().event_shape;
}

std::string Teacher::name() const {
  return net_ ? net_->name() : analytic_->name();
}

at::Tensor Teacher::predict(Param to, const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                            const at::Tensor& alpha, const at::Tensor& sigma) const {
  torch::NoGradGuard ng;
  if (net_) {
    const at::Tensor raw = net_->forward(x, t.to(x.device()), y);
    return convert(raw, net_->param(), to, x, alpha, sigma);
  }
  const at::Tensor xd = x.to(at::kCPU, at::kDouble);
  const at::Tensor raw = analytic_->predict(xd, t);
  return convert(raw, analytic_->param(), to, xd, alpha.to(at::kCPU, at::kDouble),
                 sigma.to(at::kCPU, at::kDouble))
      .to(x.device(), x.scalar_type());
}

}  // namespace sdekit::detail

#include <cmath>
#include <iostream>

#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"

int main() {
  using namespace sdekit;
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  SampleRequest req;
  req.model = &model;
  req.sde = sde.get();
  req.times = make_time_grid(GridKind::UniformT, *sde->schedule(), 10, 1.0, 1e-3);
  req.x_init = at::zeros({4, 2}, at::kDouble) + 0.5;
  const SampleResult r = make_sampler("heun")->run(req);
  const double norm = r.x.norm().item<double>();
  std::cout << "consumer: heun NFE " << r.nfe << ", |x| = " << norm << "\n";
  return (r.nfe == 20 && std::isfinite(norm)) ? 0 : 1;
}

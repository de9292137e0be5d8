#pragma once
// Toy 2-D data sets for diffusion experiments, scaled to roughly unit size. Every sample is drawn
// from the given CPU generator, so a seed fixes the output. sigma below is the standard deviation
// of isotropic Gaussian noise, in the returned units.
//
//   "two-moons"    (sklearn's make_moons layout, noise 0.05, then centred and doubled): with
//                  theta ~ U(0, pi), the upper moon (cos theta, sin theta), the lower moon
//                  (1 - cos theta, 1/2 - sin theta), plus N(0, 0.05^2 I); returned as
//                  2 (p - (1/2, 1/4)). So the upper moon is the upper half of the circle of
//                  radius 2 about (-1, -1/2), the lower moon the lower half of the circle of
//                  radius 2 about (1, 1/2), sigma = 0.1. The first ceil(n/2) draws are upper, the
//                  rest lower, and the rows are randomly permuted. Mean 0 (exact for even n);
//                  Var x = 3 + 4 s^2, Var y = 4 (1/2 - 4/pi^2 + (2/pi - 1/4)^2 + s^2),
//                  Cov = -(4/pi - 1/2), with s = 0.05: about 3.01, 0.987, -0.773.
//   "swiss-roll"   (sklearn's make_swiss_roll, 2-D, scaled by 1/5): t = 1.5 pi (1 + 2 u),
//                  u ~ U(0, 1), returned as (t cos t, t sin t) / 5 + N(0, 0.1^2 I). The noiseless
//                  radius t / 5 lies in [0.3 pi, 0.9 pi] = [0.942, 2.827]. Not centred: mean
//                  (2/5, 2/(15 pi)) = (0.4, 0.0424); E[x^2] = (4.875 pi^2 - 1/4) / 25 + 0.01,
//                  E[y^2] = (4.875 pi^2 + 1/4) / 25 + 0.01, E[xy] = 0.06 pi.
//   "checkerboard" (the FFJORD layout, unscaled): uniform on the 8 unit squares
//                  [i, i+1) x [j, j+1) in [-2, 2)^2 with i + j even, no noise. Mean 0,
//                  Var x = Var y = 4/3, Cov = 1/4.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sdekit {

/// "two-moons", "swiss-roll", "checkerboard".
const std::vector<std::string>& toy_dataset_names();

/// n samples [n, 2] float64 on the CPU of the named set (above), all randomness from `gen` (a CPU
/// generator). Throws std::invalid_argument for an unknown name (listing the valid ones) or n < 0.
at::Tensor toy_dataset(const std::string& name, int64_t n, at::Generator& gen);

}  // namespace sdekit

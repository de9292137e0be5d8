#pragma once
// A virtual Brownian tree (Li, Wong, Chen & Duvenaud 2020, torchsde's BrownianTree; diffrax's
// VirtualBrownianTree, which also carries the space-time Levy area of Foster, Lyons & Oberhauser
// 2020): a Brownian path on [t0, t1] that stores nothing and is evaluated at any t by recursive
// Brownian-bridge bisection, every draw taken from a counter-based generator keyed by
// (seed, row, node). The path is a fixed function of (seed, row): the same t gives the same bits
// whatever was queried before, whatever the batch size, on any thread.
//
// What a node carries. Each dyadic node [a, b] (h = b - a) knows W(a), W(b) and the standardised
// area of its Brownian bridge, k = K / sqrt(h^3 / 12), K = int_a^b (W(u) - W(a) - (u - a)/h
// (W(b) - W(a))) du ~ N(0, h^3 / 12) independent of the increment (so (W, k) is the pair
// (W, H) of Foster et al. with H = K / h). The root has W(t0) = 0, W(t1) = sqrt(t1 - t0) z1,
// k = z2. For a point a + x h (0 <= x <= 1, y = 1 - x) inside a node, the bridge value
// B = (W(a + x h) - W(a) - x (W(b) - W(a))) / sqrt(h) and its partial area
// I = int_a^{a + x h} (W(u) - W(a) - (u - a)/h (W(b) - W(a))) du / h^{3/2} are, given k, jointly
// Gaussian with (p = x y; derived from the bridge covariance min(u, v) - u v / h):
//   E[B | k] = sqrt(3) p k,            Var B = p (1 - 3 p),
//   E[I | k] = sqrt(3) x^2 (3 - 2x) k / 6, Var I = p^3 / 3,   Cov(B, I) = p^2 (1 - 2x) / 2,
// drawn with two standard normals through the 2x2 Cholesky factor (its determinant is p^4 / 12).
// Bisection is this draw at x = 1/2 (B = (sqrt(3) k + z1) / 4, I = (2k + z2) / (8 sqrt(3))),
// which also fixes the two children's standardised areas
//   k_left = sqrt(96) (I - B/4),   k_right = sqrt(96) (k / sqrt(12) - I - B/4),
// both N(0, 1) and, with the midpoint, independent: an exact refinement of (W, k).
//
// Queries. A time t descends depth() levels, down to the leaf (a dyadic node shorter than tol)
// that contains it; W(t) and A(t) = int_{t0}^t W(u) du are then the exact conditional draw above
// inside that leaf, seeded by the leaf. Any set of query points lying in distinct leaves therefore
// has exactly the law of Brownian motion (with its time integrals); two points closer than tol
// may share a leaf, whose single draw makes them perfectly correlated within it (an error of
// order sqrt(tol) in their increment): choose tol well below the smallest step.
// increment(s, t) = W(t) - W(s) and Z(s, t) = A(t) - A(s) - (t - s) W(s) are differences of the
// same function values, so increments (and areas,
//   Z(s, u) = Z(s, t) + Z(t, u) + (u - t)(W(t) - W(s)))
// over adjacent intervals add up to rounding.
//
// Cost: a query visits depth() + 2 nodes per point (root, bisections, leaf), each drawing two
// normals per entry from a splitmix64 counter stream keyed by (seed, row, node) through
// Marsaglia's polar method; increment and increment_and_area follow both s and t but draw the
// nodes the two share (the levels above their split) once. depth() is the smallest d with
// (t1 - t0) / 2^d < tol (tol = 1e-6 on [0, 1]: 20). So a query costs O(depth) per entry, about
// 30 ns per node and entry on one core (measured: depth 21, 4000 entries, a step of 1e-3:
// 1.1 us per entry for increment_and_area, 0.7 us for value). Work is in float64 on the CPU,
// parallel over rows for large batches, then converted to like's dtype and device. Nothing is
// cached, so there is no state to share between threads.
#include <ATen/ATen.h>

#include <cstdint>

#include "solvers/brownian.hpp"

namespace sdekit {

class VirtualBrownianTree final : public BrownianPath {
 public:
  /// A path on [t0, t1] (t0 < t1, both finite), W(t0) = 0, keyed by `seed`, resolved down to
  /// dyadic leaves shorter than tol (tol > 0; at most 60 levels). Throws std::invalid_argument.
  VirtualBrownianTree(double t0, double t1, uint64_t seed, double tol);

  /// W(t) - W(s) shaped like `like` ([n, ...]: every entry of row i is an independent Brownian
  /// motion determined by (seed, i) alone), in like's dtype and on its device. s, t in [t0, t1],
  /// in either order; otherwise std::invalid_argument naming the value and the interval.
  at::Tensor increment(double s, double t, const at::Tensor& like) const override;
  /// W(t) - W(s) and Z(s, t) = int_s^t (W(u) - W(s)) du of the same path (see brownian.hpp).
  BrownianIncrement increment_and_area(double s, double t, const at::Tensor& like) const override;
  /// W(t) itself (W(t0) = 0), shaped like `like`.
  at::Tensor value(double t, const at::Tensor& like) const;

  double t0() const { return t0_; }
  double t1() const { return t1_; }
  uint64_t seed() const { return seed_; }
  double tol() const { return tol_; }
  /// Bisection levels from the root to a leaf: the smallest d with (t1 - t0) / 2^d < tol.
  int depth() const { return depth_; }

 private:
  double t0_, t1_, tol_;
  uint64_t seed_;
  int depth_;
};

}  // namespace sdekit

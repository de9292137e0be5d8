// Virtual Brownian tree with the time integral of the path; the construction and its formulas
// are stated in brownian_tree.hpp.
#include "solvers/brownian_tree.hpp"

#include <ATen/Parallel.h>

#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <string>

namespace sdekit {
namespace {

constexpr int kMaxDepth = 60;  // node ids stay below 2^61
constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ULL;
constexpr double kSqrt3 = 1.7320508075688772935;
constexpr double kSqrt96 = 9.7979589711327123928;
constexpr double kInv8Sqrt3 = 0.072168783648703220563;  // 1 / (8 sqrt(3))
constexpr double kInvSqrt12 = 0.28867513459481288225;

// The splitmix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline uint64_t row_key(uint64_t seed_key, int64_t row) {
  return mix64(seed_key ^ mix64(static_cast<uint64_t>(row) * kGamma + 0x632be59bd9b4e019ULL));
}

// Node 0 holds the root's draws (W(t1), k); node m >= 1 (heap numbering: root 1, children 2m,
// 2m + 1) holds the draws that bisect it, or, for a leaf, the draws of points inside it.
inline uint64_t node_key(uint64_t rkey, uint64_t node) {
  return mix64(rkey ^ mix64(node + 0xd1b54a32d192ed03ULL));
}

// Two independent standard normals for entry j of a node: Marsaglia's polar method (Marsaglia &
// Bray 1964) on the splitmix64 stream whose start is keyed by (node key, j); a pair is accepted
// with probability pi/4, so 2.5 counters are used on average. Exact in law (no approximation of
// the normal distribution); the outcome is a fixed function of (key, j).
inline void normals(uint64_t key, int64_t j, double& z1, double& z2) {
  uint64_t c = mix64(key + static_cast<uint64_t>(j) * kGamma);
  for (;;) {
    c += kGamma;
    const uint64_t a = mix64(c);
    c += kGamma;
    const uint64_t b = mix64(c);
    // Uniform on [-1, 1) from the top 53 bits (exact in double).
    const double u = static_cast<double>(a >> 11) * 0x1.0p-52 - 1.0;
    const double v = static_cast<double>(b >> 11) * 0x1.0p-52 - 1.0;
    const double q = u * u + v * v;
    if (q < 1.0 && q > 0.0) {
      const double f = std::sqrt(-2.0 * std::log(q) / q);
      z1 = u * f;
      z2 = v * f;
      return;
    }
  }
}

// What a query point does at every level: the same for all entries and rows.
struct Route {
  std::array<uint64_t, kMaxDepth + 1> node{};  // node at level k; node[depth] is the leaf
  std::array<double, kMaxDepth> len{}, sqrt_len{}, len15{};
  std::array<bool, kMaxDepth> right{};
  // Leaf draw of the point a + x h (brownian_tree.hpp): B = mb k + l11 z1,
  // I = mi k + l21 z1 + l22 z2.
  double x = 0, h = 0, sqrt_h = 0, h15 = 0, mb = 0, l11 = 0, mi = 0, l21 = 0, l22 = 0;
};

Route make_route(double t0, double t1, int depth, double t) {
  Route r;
  double a = t0, b = t1;
  uint64_t id = 1;
  for (int k = 0; k < depth; ++k) {
    r.node[k] = id;
    const double h = b - a;
    r.len[k] = h;
    r.sqrt_len[k] = std::sqrt(h);
    r.len15[k] = h * std::sqrt(h);
    const double m = a + 0.5 * h;
    r.right[k] = !(t < m);
    if (r.right[k]) {
      a = m;
      id = 2 * id + 1;
    } else {
      b = m;
      id = 2 * id;
    }
  }
  r.node[depth] = id;
  r.h = b - a;
  r.sqrt_h = std::sqrt(r.h);
  r.h15 = r.h * r.sqrt_h;
  const double x = std::min(1.0, std::max(0.0, (t - a) / r.h));
  const double y = 1.0 - x, p = x * y;
  r.x = x;
  r.mb = kSqrt3 * p;
  r.mi = kSqrt3 * x * x * (3.0 - 2.0 * x) / 6.0;
  if (p > 0.0) {
    const double q = 1.0 - 3.0 * p;  // in [1/4, 1]
    r.l11 = std::sqrt(p * q);
    r.l21 = p * p * (1.0 - 2.0 * x) / (2.0 * r.l11);
    r.l22 = std::sqrt(p * p * p / (12.0 * q));
  }
  return r;
}

// W(a), W(b), the standardised bridge area k of the current node, and A(a) = int_{t0}^a W.
struct State {
  double wa, wb, k, aa;
};

// Bisects the node (length h) with normals z1, z2 and moves to the child on the given side.
template <bool Area>
inline void bisect(State& st, double h, double sqrt_h, double h15, bool right, double z1,
                   double z2) {
  const double b = (kSqrt3 * st.k + z1) * 0.25;     // bridge at the midpoint / sqrt(h)
  const double i = (2.0 * st.k + z2) * kInv8Sqrt3;  // its left-half area / h^{3/2}
  const double wm = 0.5 * (st.wa + st.wb) + sqrt_h * b;
  if (right) {
    if (Area) st.aa += h * (0.5 * st.wa + 0.125 * (st.wb - st.wa)) + h15 * i;
    st.k = kSqrt96 * (st.k * kInvSqrt12 - i - 0.25 * b);
    st.wa = wm;
  } else {
    st.k = kSqrt96 * (i - 0.25 * b);
    st.wb = wm;
  }
}

// W and A at the route's point inside its leaf.
template <bool Area>
inline void leaf(const State& st, const Route& r, double z1, double z2, double& w, double& a) {
  const double dw = st.wb - st.wa;
  w = st.wa + r.x * dw + r.sqrt_h * (r.mb * st.k + r.l11 * z1);
  if (Area)
    a = st.aa + r.h * (r.x * st.wa + 0.5 * r.x * r.x * dw) +
        r.h15 * (r.mi * st.k + r.l21 * z1 + r.l22 * z2);
}

enum class Mode { Value, Increment, IncrementArea };

// Evaluates, for every entry of an [n, D] batch: Value: W(t) into out0; Increment: W(t) - W(s)
// into out0; IncrementArea: also Z(s, t) into out1. Levels where both points sit in the same node
// draw its normals once.
template <Mode M>
void evaluate(uint64_t seed, double t0, double t1, int depth, double s, double t, int64_t n,
              int64_t D, double* out0, double* out1) {
  constexpr bool kArea = M == Mode::IncrementArea;
  constexpr int NP = M == Mode::Value ? 1 : 2;
  std::array<Route, 2> routes;
  routes[0] = make_route(t0, t1, depth, M == Mode::Value ? t : s);
  if (NP == 2) routes[1] = make_route(t0, t1, depth, t);
  const double sqrt_T = std::sqrt(t1 - t0);
  const uint64_t seed_key = mix64(seed + kGamma);
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    std::array<std::array<uint64_t, kMaxDepth + 1>, 2> keys;
    for (int64_t row = begin; row < end; ++row) {
      const uint64_t rk = row_key(seed_key, row);
      const uint64_t root = node_key(rk, 0);
      for (int p = 0; p < NP; ++p)
        for (int k = 0; k <= depth; ++k) {
          const uint64_t id = routes[p].node[k];
          keys[p][k] = (p == 1 && id == routes[0].node[k]) ? keys[0][k] : node_key(rk, id);
        }
      for (int64_t j = 0; j < D; ++j) {
        double z1, z2;
        normals(root, j, z1, z2);
        std::array<State, 2> st;
        st[0] = State{0.0, sqrt_T * z1, z2, 0.0};
        st[1] = st[0];
        for (int k = 0; k < depth; ++k) {
          normals(keys[0][k], j, z1, z2);
          const Route& r0 = routes[0];
          bisect<kArea>(st[0], r0.len[k], r0.sqrt_len[k], r0.len15[k], r0.right[k], z1, z2);
          if (NP == 2) {
            const Route& r1 = routes[1];
            if (r1.node[k] != r0.node[k]) normals(keys[1][k], j, z1, z2);
            bisect<kArea>(st[1], r1.len[k], r1.sqrt_len[k], r1.len15[k], r1.right[k], z1, z2);
          }
        }
        std::array<double, 2> w{}, a{};
        normals(keys[0][depth], j, z1, z2);
        leaf<kArea>(st[0], routes[0], z1, z2, w[0], a[0]);
        if (NP == 2) {
          if (routes[1].node[depth] != routes[0].node[depth]) normals(keys[1][depth], j, z1, z2);
          leaf<kArea>(st[1], routes[1], z1, z2, w[1], a[1]);
        }
        const int64_t idx = row * D + j;
        if (M == Mode::Value) {
          out0[idx] = w[0];
        } else {
          out0[idx] = w[1] - w[0];
          if (kArea) out1[idx] = a[1] - a[0] - (t - s) * w[0];
        }
      }
    }
  });
}

// The shortest text that reads back as v (so values just outside the interval show as such).
std::string num(double v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

}  // namespace

VirtualBrownianTree::VirtualBrownianTree(double t0, double t1, uint64_t seed, double tol)
    : t0_(t0), t1_(t1), tol_(tol), seed_(seed), depth_(0) {
  if (!(std::isfinite(t0) && std::isfinite(t1) && t0 < t1))
    throw std::invalid_argument("VirtualBrownianTree: need finite t0 < t1, got t0 = " + num(t0) +
                                ", t1 = " + num(t1));
  if (!(std::isfinite(tol) && tol > 0.0))
    throw std::invalid_argument("VirtualBrownianTree: tol must be finite and > 0, got " + num(tol));
  double len = t1 - t0;
  while (!(len < tol)) {
    len *= 0.5;
    if (++depth_ > kMaxDepth)
      throw std::invalid_argument("VirtualBrownianTree: tol = " + num(tol) + " needs more than " +
                                  std::to_string(kMaxDepth) + " bisection levels on [" + num(t0) +
                                  ", " + num(t1) + "]; use tol > " +
                                  num((t1 - t0) * std::ldexp(1.0, -kMaxDepth)));
  }
}

namespace {
void check_time(const char* name, double v, double t0, double t1) {
  if (!(v >= t0 && v <= t1))
    throw std::invalid_argument(std::string("VirtualBrownianTree: ") + name + " = " + num(v) +
                                " lies outside the path's interval [" + num(t0) + ", " + num(t1) +
                                "]");
}

void check_like(const at::Tensor& like) {
  if (!like.defined() || like.dim() < 1)
    throw std::invalid_argument(
        "VirtualBrownianTree: `like` must be a defined batch tensor [n, ...] (dim >= 1)");
}

// (n, D): rows and entries per row of a [n, ...] batch.
std::pair<int64_t, int64_t> rows_entries(const at::Tensor& like) {
  const int64_t n = like.size(0);
  return {n, n == 0 ? 0 : like.numel() / n};
}

at::Tensor finish(const at::Tensor& flat, const at::Tensor& like) {
  return flat.view(like.sizes()).to(like.options());
}
}  // namespace

at::Tensor VirtualBrownianTree::increment(double s, double t, const at::Tensor& like) const {
  check_time("s", s, t0_, t1_);
  check_time("t", t, t0_, t1_);
  check_like(like);
  const auto [n, D] = rows_entries(like);
  at::Tensor dw = at::empty({n * D}, at::kDouble);
  evaluate<Mode::Increment>(seed_, t0_, t1_, depth_, s, t, n, D, dw.data_ptr<double>(), nullptr);
  return finish(dw, like);
}

BrownianIncrement VirtualBrownianTree::increment_and_area(double s, double t,
                                                          const at::Tensor& like) const {
  check_time("s", s, t0_, t1_);
  check_time("t", t, t0_, t1_);
  check_like(like);
  const auto [n, D] = rows_entries(like);
  at::Tensor dw = at::empty({n * D}, at::kDouble), dz = at::empty({n * D}, at::kDouble);
  evaluate<Mode::IncrementArea>(seed_, t0_, t1_, depth_, s, t, n, D, dw.data_ptr<double>(),
                                dz.data_ptr<double>());
  return {finish(dw, like), finish(dz, like)};
}

at::Tensor VirtualBrownianTree::value(double t, const at::Tensor& like) const {
  check_time("t", t, t0_, t1_);
  check_like(like);
  const auto [n, D] = rows_entries(like);
  at::Tensor w = at::empty({n * D}, at::kDouble);
  evaluate<Mode::Value>(seed_, t0_, t1_, depth_, t, t, n, D, w.data_ptr<double>(), nullptr);
  return finish(w, like);
}

}  // namespace sdekit

#include "experiments/elbo.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "models/param.hpp"
#include "solvers/row_noise.hpp"

namespace sdekit {

namespace {

constexpr double kLog2Pi = 1.83787706640934548356;

std::vector<int64_t> elbo_batch_shape(int64_t n, const std::vector<int64_t>& event_shape) {
  std::vector<int64_t> s = {n};
  s.insert(s.end(), event_shape.begin(), event_shape.end());
  return s;
}

// [n] -> [n, 1, ..., 1] against a batch of `dims` dimensions.
at::Tensor elbo_rows_view(const at::Tensor& v, int64_t dims) {
  std::vector<int64_t> s(static_cast<size_t>(dims), 1);
  s[0] = v.size(0);
  return v.reshape(s);
}

// The model's score at x_t (rows [n, D], float64) and per-row times t, alpha, sigma ([n]),
// as float64 rows [n, D].
at::Tensor elbo_score(CountingModel& m, const at::Tensor& x, const at::Tensor& t,
                      const at::Tensor& alpha, const at::Tensor& sigma,
                      const std::vector<int64_t>& event_shape, at::ScalarType dtype) {
  const int64_t n = x.size(0);
  const at::Tensor xb = x.reshape(elbo_batch_shape(n, event_shape));
  const at::Tensor pred = m.predict(xb.to(dtype), t).to(at::kDouble);
  const int64_t dims = xb.dim();
  return convert(pred, m.param(), Param::Score, xb, elbo_rows_view(alpha, dims),
                 elbo_rows_view(sigma, dims))
      .reshape({n, -1});
}

at::Tensor elbo_sq(const at::Tensor& r) {
  return (r * r).sum(1);
}

// KL(N(m, v I) || N(0, p^2 I)) per row of m [n, D].
at::Tensor gaussian_kl_to_prior(const at::Tensor& m, double v, double p) {
  const double D = double(m.size(1));
  const double r = v / (p * p);
  return elbo_sq(m).div(p * p).add(D * (r - 1.0 - std::log(r))).mul(0.5);
}

// The bound's row-keyed draws (docs/theory.md section 10.1): draw k of the stream, counted from 1
// (draw 0 of a row is x_T's in sampling; here nothing is shared with it).
struct ElboDraws {
  const ElboOptions& o;
  uint64_t next = 1;
  at::Tensor normal(at::IntArrayRef shape) {
    return row_normal(shape, at::kDouble, o.seed, o.first_row, next++);
  }
  // A uniform per row on (0, 1): Phi of a row-keyed normal, computed row by row.
  at::Tensor uniform(int64_t n) {
    at::Tensor z = normal({n});
    auto a = z.accessor<double, 1>();
    for (int64_t i = 0; i < n; ++i) a[i] = 0.5 * std::erfc(-a[i] * M_SQRT1_2);
    return z;
  }
  // A uniform integer per row in [lo, hi).
  at::Tensor integer(int64_t lo, int64_t hi, int64_t n) {
    const at::Tensor u = uniform(n);
    return (u * double(hi - lo)).floor_().clamp_(0.0, double(hi - lo - 1)).to(at::kLong) + lo;
  }
};

// The prior term: the closed-form KL to the Gaussian prior, or with an exact prior a Monte Carlo
// estimate of E_q[log q(x_T | data) - log p_T(x_T)] over K draws, q = N(a x, s^2 I).
at::Tensor elbo_prior_term(const at::Tensor& x, double a, double s, const ElboOptions& o,
                           ElboDraws& gen) {
  if (!o.log_prior) return gaussian_kl_to_prior(x * a, s * s, o.prior_std);
  const double D = double(x.size(1));
  at::Tensor acc = at::zeros({x.size(0)}, at::kDouble);
  for (int64_t k = 0; k < o.timesteps; ++k) {
    const at::Tensor e = gen.normal(x.sizes());
    const at::Tensor xT = x * a + e * s;
    const at::Tensor log_q = elbo_sq(e).mul(-0.5).sub(0.5 * D * (kLog2Pi + 2.0 * std::log(s)));
    acc += log_q - o.log_prior(xT).to(at::kDouble);
  }
  return acc / double(o.timesteps);
}

// The control variate's coefficient at log-SNR rho: c (||eps||^2 - D) has mean zero for any c, and
// c = sigmoid(rho + log v)^2 is the share of ||eps - eps_hat||^2 that follows ||eps||^2 for data
// of variance v per coordinate (docs/theory.md section 9.3).
double cv_coefficient(double rho, double log_v) {
  const double z = rho + log_v;
  const double sg = z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
  return sg * sg;
}

at::Tensor cv_coefficients(const at::Tensor& rho, double log_v) {
  return at::sigmoid(rho + log_v).pow(2);
}

// The control variate's log-variance: the given one, or the data's.
double data_log_variance(const at::Tensor& x, const ElboOptions& o) {
  return std::isnan(o.log_variance) ? elbo_data_log_variance(x) : o.log_variance;
}

void check_finite_rows(const at::Tensor& v, const char* what) {
  if (!at::isfinite(v).all().item<bool>())
    throw std::runtime_error(std::string("the variational bound's ") + what +
                             " is not finite (the model returned NaN or inf)");
}

}  // namespace

double elbo_data_log_variance(const at::Tensor& x) {
  if (x.size(0) < 2) return 0.0;
  const at::Tensor f = x.to(at::kDouble).reshape({x.size(0), -1});
  const double v = f.var(0).mean().item<double>();
  return v > 0 ? std::log(v) : 0.0;
}

at::Tensor discretized_gaussian_log_prob(const at::Tensor& x, const at::Tensor& mean, double std) {
  const double half = 1.0 / 255.0;
  const double inf = std::numeric_limits<double>::infinity();
  const at::Tensor xd = x.to(at::kDouble), md = mean.to(at::kDouble);
  at::Tensor zl = (xd - half - md) / std, zu = (xd + half - md) / std;
  zl = at::where(xd < -1.0 + 0.5 * half, at::full_like(zl, -inf), zl);
  zu = at::where(xd > 1.0 - 0.5 * half, at::full_like(zu, inf), zu);
  // P = Phi(b) - Phi(a) with both ends in the lower tail where possible (mirror when a > 0).
  const at::Tensor flip = zl > 0;
  const at::Tensor a = at::where(flip, -zu, zl), b = at::where(flip, -zl, zu);
  const at::Tensor lb = at::special_log_ndtr(b), la = at::special_log_ndtr(a);
  return lb + at::log(-at::expm1(la - lb));
}

ElboRows ddpm_elbo(ScoreModel& model, const VPDiscrete& k, const std::vector<int64_t>& event_shape,
                   const at::Tensor& x0_in, const ElboOptions& o) {
  const int N = k.steps();
  if (N < 2)
    throw std::invalid_argument("the DDPM bound needs a table of >= 2 steps, got " +
                                std::to_string(N));
  if (o.timesteps < 1 || o.timesteps > N - 1)
    throw std::invalid_argument("field 'timesteps': draws of n in {2.." + std::to_string(N) +
                                "} per row must lie in [1, " + std::to_string(N - 1) + "], got " +
                                std::to_string(o.timesteps));
  const int64_t n = x0_in.size(0);
  const at::Tensor x = x0_in.to(at::kDouble).reshape({n, -1});
  const double D = double(x.size(1));
  if (o.discretized) {
    const at::Tensor b = (x + 1.0) * 127.5;
    const bool on_grid = (b - b.round()).abs().max().item<double>() < 1e-6 &&
                         b.min().item<double>() > -1e-6 && b.max().item<double>() < 255.0 + 1e-6;
    if (!on_grid)
      throw std::invalid_argument(
          "field 'decoder': 'discretized' needs 8-bit data, values -1 + 2 b / 255 for b in "
          "0..255; the data has other values");
  }
  ElboDraws gen{o};
  CountingModel m(model);
  const double log_v = data_log_variance(x, o);
  // The table: abar_0..abar_N and beta_1..beta_N (index n).
  std::vector<double> abar(static_cast<size_t>(N + 1)), beta(static_cast<size_t>(N + 1), 0.0);
  for (int i = 0; i <= N; ++i) abar[size_t(i)] = k.alpha_bar(i);
  for (int i = 1; i <= N; ++i) beta[size_t(i)] = k.beta(i);
  const at::Tensor abar_t = at::tensor(abar, at::kDouble), beta_t = at::tensor(beta, at::kDouble);

  ElboRows r;
  r.prior =
      elbo_prior_term(x, std::sqrt(abar[size_t(N)]), std::sqrt(1.0 - abar[size_t(N)]), o, gen);

  // L_{n-1} for n = 2..N, one draw per stratum of the index range, weighted by its size.
  r.diffusion = at::zeros({n}, at::kDouble);
  const int64_t K = o.timesteps, span = N - 1;
  for (int64_t j = 0; j < K; ++j) {
    const int64_t lo = 2 + (j * span) / K, hi = 2 + ((j + 1) * span) / K;  // [lo, hi)
    const at::Tensor idx = gen.integer(lo, hi, n);
    const at::Tensor ab = abar_t.index_select(0, idx), ab_prev = abar_t.index_select(0, idx - 1);
    const at::Tensor bt = beta_t.index_select(0, idx);
    const at::Tensor e = gen.normal(x.sizes());
    const at::Tensor al = ab.sqrt(), sg = (1.0 - ab).sqrt();
    const at::Tensor xn = x * al.unsqueeze(1) + e * sg.unsqueeze(1);
    const at::Tensor score =
        elbo_score(m, xn, idx.to(at::kDouble) / double(N), al, sg, event_shape, o.dtype);
    const at::Tensor eps_hat = -score * sg.unsqueeze(1);
    const at::Tensor post_var = (1.0 - ab_prev) / (1.0 - ab) * bt;
    const at::Tensor s2 = o.posterior_variance ? post_var : bt;
    const at::Tensor ratio = post_var / s2;
    const at::Tensor c = bt * bt / ((1.0 - bt) * (1.0 - ab)) / (2.0 * s2);
    const at::Tensor cv = cv_coefficients((ab / (1.0 - ab)).log(), log_v);
    const at::Tensor L = (ratio - 1.0 - ratio.log()).mul(0.5 * D) +
                         c * (elbo_sq(e - eps_hat) - cv * (elbo_sq(e) - D));
    r.diffusion += L * double(hi - lo);
  }

  // L_0 = -log p(x_0 | x_1), mean mu_theta(x_1, 1), variance beta_1.
  {
    const double b1 = beta[1], al = std::sqrt(abar[1]), sg = std::sqrt(1.0 - abar[1]);
    const at::Tensor e = gen.normal(x.sizes());
    const at::Tensor x1 = x * al + e * sg;
    const at::Tensor score =
        elbo_score(m, x1, at::full({n}, 1.0 / N, at::kDouble), at::full({n}, al, at::kDouble),
                   at::full({n}, sg, at::kDouble), event_shape, o.dtype);
    const at::Tensor mu = (x1 + score * b1) / std::sqrt(1.0 - b1);  // eps_hat = -sigma score
    // The Gaussian decoder's ||x - mu||^2 / (2 beta_1) = ||eps - eps_hat||^2 / (2 (1 - beta_1)).
    const double cv = cv_coefficient(std::log(abar[1] / (1.0 - abar[1])), log_v);
    r.decoder = o.discretized ? -discretized_gaussian_log_prob(x, mu, std::sqrt(b1)).sum(1)
                              : (elbo_sq(x - mu) - (elbo_sq(e) - D) * (cv * b1 / (1.0 - b1)))
                                    .div(2.0 * b1)
                                    .add(0.5 * D * (kLog2Pi + std::log(b1)));
  }
  check_finite_rows(r.diffusion, "diffusion term");
  check_finite_rows(r.decoder, "decoder term");
  r.total = r.prior + r.diffusion + r.decoder;
  r.nfe = m.count();
  return r;
}

ElboRows continuous_elbo(ScoreModel& model, const NoiseSchedule& k,
                         const std::vector<int64_t>& event_shape, const at::Tensor& y_in,
                         double t_data, double T, const ElboOptions& o) {
  if (o.timesteps < 1)
    throw std::invalid_argument("field 'timesteps': needs >= 1 draws per row, got " +
                                std::to_string(o.timesteps));
  if (!(o.decoder_std > 0.0 && o.decoder_std < 1.0))
    throw std::invalid_argument("field 'decoder_std': must lie in (0, 1), got " +
                                std::to_string(o.decoder_std));
  const int64_t n = y_in.size(0);
  const at::Tensor y = y_in.to(at::kDouble).reshape({n, -1});
  const double D = double(y.size(1));
  const double a_e = k.alpha(t_data), lam_e = k.lambda(t_data);
  // rho(t) = log(a^2 / s^2) = -2 log a_e - log(e^{-2 lambda_t} - e^{-2 lambda_e}).
  auto rho_of = [&](double t) {
    const double lt = k.lambda(t);
    return -2.0 * std::log(a_e) + 2.0 * lt - std::log(-std::expm1(-2.0 * (lam_e - lt)));
  };
  const double rho_T = rho_of(T), rho_1 = -2.0 * std::log(o.decoder_std);
  if (!(rho_1 > rho_T))
    throw std::invalid_argument("field 'decoder_std': " + std::to_string(o.decoder_std) +
                                " is noisier than the end of the SDE (log-SNR " +
                                std::to_string(rho_T) + ")");
  // The time and the transition's (a, s) at rho; alpha and sigma of the marginal.
  struct Point {
    double t, a, s, alpha, sigma;
  };
  auto point = [&](double rho) {
    const double m2 = -2.0 * lam_e, r2 = -rho - 2.0 * std::log(a_e);  // -2 lambda_t = lse(m2, r2)
    const double hi = std::max(m2, r2);
    const double lse = hi + std::log(std::exp(m2 - hi) + std::exp(r2 - hi));
    Point p;
    p.t = k.t_of_lambda(-0.5 * lse);
    p.alpha = k.alpha(p.t);
    p.sigma = k.sigma(p.t);
    p.a = p.alpha / a_e;
    p.s = p.a * std::exp(-0.5 * rho);
    return p;
  };
  ElboDraws gen{o};
  CountingModel m(model);
  const double log_v = data_log_variance(y, o);
  ElboRows r;
  {
    const Point pT = point(rho_T);
    r.prior = elbo_prior_term(y, pT.a, pT.s, o, gen);
  }
  r.diffusion = at::zeros({n}, at::kDouble);
  const double width = rho_1 - rho_T;
  const int64_t K = o.timesteps;
  for (int64_t j = 0; j < K; ++j) {
    const at::Tensor u = gen.uniform(n);
    const at::Tensor rho = (u + double(j)) * (width / double(K)) + rho_T;
    const auto un = static_cast<size_t>(n);
    std::vector<double> t(un), a(un), s(un), al(un), sg(un);
    const auto rho_a = rho.accessor<double, 1>();
    for (int64_t i = 0; i < n; ++i) {
      const Point p = point(rho_a[i]);
      t[size_t(i)] = p.t;
      a[size_t(i)] = p.a;
      s[size_t(i)] = p.s;
      al[size_t(i)] = p.alpha;
      sg[size_t(i)] = p.sigma;
    }
    const at::Tensor at_ = at::tensor(a, at::kDouble).unsqueeze(1);
    const at::Tensor st = at::tensor(s, at::kDouble).unsqueeze(1);
    const at::Tensor e = gen.normal(y.sizes());
    const at::Tensor xt = y * at_ + e * st;
    const at::Tensor score =
        elbo_score(m, xt, at::tensor(t, at::kDouble), at::tensor(al, at::kDouble),
                   at::tensor(sg, at::kDouble), event_shape, o.dtype);
    const at::Tensor cv = cv_coefficients(rho, log_v);
    r.diffusion += (elbo_sq(e + score * st) - cv * (elbo_sq(e) - D)).mul(0.5 * width / double(K));
  }
  {
    const Point p1 = point(rho_1);
    const at::Tensor e = gen.normal(y.sizes());
    const at::Tensor x1 = y * p1.a + e * p1.s;
    const at::Tensor score =
        elbo_score(m, x1, at::full({n}, p1.t, at::kDouble), at::full({n}, p1.alpha, at::kDouble),
                   at::full({n}, p1.sigma, at::kDouble), event_shape, o.dtype);
    const double cv = cv_coefficient(rho_1, log_v);
    r.decoder = (elbo_sq(e + score * p1.s) - (elbo_sq(e) - D) * cv)
                    .mul(0.5)
                    .add(0.5 * D * (kLog2Pi - rho_1));
  }
  check_finite_rows(r.diffusion, "diffusion term");
  check_finite_rows(r.decoder, "decoder term");
  r.total = r.prior + r.diffusion + r.decoder;
  r.nfe = m.count();
  return r;
}

}  // namespace sdekit

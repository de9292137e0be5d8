#include "schedules/time_grid.hpp"

#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include <boost/math/special_functions/beta.hpp>

#include "schedules/vp_discrete.hpp"

namespace sdekit {

const std::vector<GridInfo>& grid_registry() {
  static const std::vector<GridInfo> grids = {
      {GridKind::UniformT, "uniform-t", "uniform in t"},
      {GridKind::UniformLambda, "uniform-lambda", "uniform in lambda = log(alpha/sigma) (logSNR)"},
      {GridKind::Quadratic, "quadratic", "uniform in sqrt(t) (DPM-Solver time_quadratic)"},
      {GridKind::Karras, "karras", "EDM rho-spacing (rho = 7) in sigma/alpha"},
      {GridKind::DdpmUniform, "ddpm-uniform", "evenly spaced integer steps of a vp-discrete table"},
      {GridKind::DdpmQuadratic, "ddpm-quad",
       "quadratically spaced integer steps of a vp-discrete table"},
      {GridKind::KlOptimal, "kl-optimal",
       "atan(sigma/alpha) uniform (Align Your Steps' KL-optimal schedule)"},
      {GridKind::Beta, "beta",
       "t at the quantiles of Beta(0.6, 0.6) (Lee et al. 2024, 'Beta sampling is all you need')"},
      {GridKind::LinearQuadratic, "linear-quadratic",
       "linear through the first 2.5% of the range for half the steps, then quadratic (Mochi)"},
      {GridKind::AysSd1, "ays-sd1",
       "Align Your Steps' sigmas for Stable Diffusion 1.5 (--sde vp-sd, sigma 0.0292..14.6)"},
      {GridKind::AysSdxl, "ays-sdxl",
       "Align Your Steps' sigmas for SDXL (--sde vp-sd, sigma 0.0292..14.6)"},
      {GridKind::AysSvd, "ays-svd",
       "Align Your Steps' sigmas for Stable Video Diffusion (sigma 0.002..700)"},
      {GridKind::File, "file:GRID.json",
       "stored times {\"times\": [T, ..., t_end]} (sdekit optimize-grid writes them)"},
  };
  return grids;
}

GridKind parse_grid(std::string_view name) {
  return parse_grid_choice(name).kind;
}

GridChoice parse_grid_choice(std::string_view name) {
  if (name.rfind("file:", 0) == 0) {
    const std::string path(name.substr(5));
    read_grid_file(path);  // errors name the file
    return {GridKind::File, path};
  }
  std::string valid;
  for (const auto& g : grid_registry()) {
    if (g.kind != GridKind::File && g.name == name) return {g.kind, ""};
    valid += (valid.empty() ? "" : ", ") + g.name;
  }
  throw std::invalid_argument("unknown time grid '" + std::string(name) + "'; valid: " + valid);
}

std::vector<double> read_grid_file(const std::string& path) {
  const std::string who = "grid file '" + path + "'";
  std::ifstream f(path);
  if (!f) throw std::invalid_argument(who + ": cannot read it");
  nlohmann::json j;
  try {
    f >> j;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(who + ": not JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("times") || !j["times"].is_array())
    throw std::invalid_argument(who + ": expected an object with a \"times\" array");
  std::vector<double> t;
  for (std::size_t i = 0; i < j["times"].size(); ++i) {
    const auto& v = j["times"][i];
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      throw std::invalid_argument(who + ": times[" + std::to_string(i) +
                                  "] is not a finite number");
    t.push_back(v.get<double>());
  }
  if (t.size() < 2)
    throw std::invalid_argument(who + ": needs at least 2 times (1 step), got " +
                                std::to_string(t.size()));
  for (std::size_t i = 1; i < t.size(); ++i)
    if (!(t[i] < t[i - 1])) {
      std::ostringstream os;
      os.precision(17);
      os << who << ": times must decrease strictly from the start to the end; times[" << i - 1
         << "] = " << t[i - 1] << ", times[" << i << "] = " << t[i];
      throw std::invalid_argument(os.str());
    }
  return t;
}

void write_grid_file(const std::string& path, const std::vector<double>& times,
                     const std::string& sde, const std::string& extra) {
  nlohmann::json j = extra.empty() ? nlohmann::json::object() : nlohmann::json::parse(extra);
  j["times"] = times;
  j["sde"] = sde;
  std::ofstream f(path);
  if (!f) throw std::invalid_argument("grid file '" + path + "': cannot write it");
  f << std::setprecision(17) << j.dump(2) << "\n";
  if (!f) throw std::invalid_argument("grid file '" + path + "': writing failed");
}

std::string grid_name(GridKind kind) {
  if (kind == GridKind::File) return "file";
  for (const auto& g : grid_registry())
    if (g.kind == kind) return g.name;
  return "?";
}

GridKind default_grid(const NoiseSchedule& schedule) {
  return parse_grid(schedule.default_grid_name());
}

const std::vector<double>& ays_table(GridKind kind) {
  // The 10-step tables of sigma/alpha published with Align Your Steps (Sabour, Fidler and Kreis,
  // 2024; the project page's "how to" section), docs/theory.md section 6.1.
  static const std::vector<double> sd1 = {14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520,
                                          1.8841921177,  1.3943805092, 0.9642583904, 0.6523686016,
                                          0.3977456272,  0.1515232662, 0.0291671582};
  static const std::vector<double> sdxl = {14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769,
                                           1.3405244945,  0.8620721141, 0.5550693289, 0.3798540708,
                                           0.2332364134,  0.1114188177, 0.0291671582};
  static const std::vector<double> svd = {700.00, 54.5,  15.886, 7.977, 4.248, 1.789,
                                          0.981,  0.403, 0.173,  0.034, 0.002};
  switch (kind) {
    case GridKind::AysSd1:
      return sd1;
    case GridKind::AysSdxl:
      return sdxl;
    case GridKind::AysSvd:
      return svd;
    default:
      throw std::invalid_argument("ays_table: " + grid_name(kind) + " has no table");
  }
}

namespace {
std::vector<double> ddpm_grid(GridKind kind, const VPDiscrete& sched, int steps, double t_start,
                              double t_end) {
  const int N = sched.steps();
  const int n_hi = static_cast<int>(std::lround(t_start * N));
  const int n_lo = static_cast<int>(std::lround(t_end * N));
  if (std::abs(n_hi - t_start * N) > 1e-9 || std::abs(n_lo - t_end * N) > 1e-9) {
    std::ostringstream os;
    os << "time grid " << grid_name(kind) << ": t_start = " << t_start << " and t_end = " << t_end
       << " must be knots n/" << N << " of the vp-discrete table";
    throw std::invalid_argument(os.str());
  }
  if (steps > n_hi - n_lo) {
    std::ostringstream os;
    os << "time grid " << grid_name(kind) << ": steps must be <= " << n_hi - n_lo
       << " (integer knots between t_end and t_start), got " << steps;
    throw std::invalid_argument(os.str());
  }
  std::vector<int> n(static_cast<size_t>(steps) + 1);
  const double span = n_hi - n_lo;
  for (int i = 0; i <= steps; ++i) {
    const double u = 1.0 - static_cast<double>(i) / steps;  // 1 at t_start, 0 at t_end
    const double q = kind == GridKind::DdpmUniform ? u : u * u;
    n[static_cast<size_t>(i)] = n_lo + static_cast<int>(std::lround(q * span));
  }
  // Rounding can merge neighbouring knots near t_end: push them apart (strictly decreasing).
  for (int i = steps - 1; i >= 0; --i)
    n[static_cast<size_t>(i)] =
        std::max(n[static_cast<size_t>(i)], n[static_cast<size_t>(i) + 1] + 1);
  if (n[0] != n_hi) throw std::logic_error("ddpm grid: could not place distinct knots");
  std::vector<double> grid(n.size());
  for (size_t i = 0; i < n.size(); ++i) grid[i] = static_cast<double>(n[i]) / N;
  grid.front() = t_start;
  grid.back() = t_end;
  return grid;
}
}  // namespace

std::vector<double> make_time_grid(GridKind kind, const NoiseSchedule& schedule, int steps,
                                   double t_start, double t_end, const GridOptions& opt) {
  const Interval d = schedule.domain();
  const std::string who = "time grid " + grid_name(kind) + " on " + schedule.name();
  if (steps < 1)
    throw std::invalid_argument(who + ": steps must be >= 1, got " + std::to_string(steps));
  if (!(t_start > d.lo && t_start <= d.hi)) {
    std::ostringstream os;
    os << who << ": t_start must lie in (" << d.lo << ", " << d.hi << "], got " << t_start;
    throw std::invalid_argument(os.str());
  }
  if (!(t_end > d.lo && t_end < t_start)) {
    std::ostringstream os;
    os << who << ": t_end must lie in (" << d.lo << ", " << t_start << "), got " << t_end;
    throw std::invalid_argument(os.str());
  }
  if (!(opt.rho > 0.0)) throw std::invalid_argument(who + ": rho must be > 0");

  std::vector<double> g(static_cast<size_t>(steps) + 1);
  const double N = steps;
  switch (kind) {
    case GridKind::File: {
      const std::vector<double> f = read_grid_file(opt.file);
      const std::string file = "grid file '" + opt.file + "'";
      if (static_cast<int>(f.size()) - 1 != steps)
        throw std::invalid_argument(file + " holds " + std::to_string(f.size() - 1) +
                                    " steps; the run asks for " + std::to_string(steps) +
                                    " (give the NFE the grid was made for)");
      auto same = [](double a, double b) {
        return std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b));
      };
      std::ostringstream os;
      os.precision(17);
      if (!same(f.front(), t_start)) {
        os << file << " starts at t = " << f.front() << "; the run starts at " << t_start;
        throw std::invalid_argument(os.str());
      }
      if (!same(f.back(), t_end)) {
        os << file << " ends at t = " << f.back() << "; the run ends at " << t_end << " (--t-end)";
        throw std::invalid_argument(os.str());
      }
      g = f;
      break;
    }
    case GridKind::KlOptimal: {
      const double smax = std::exp(-schedule.lambda(t_start)),
                   smin = std::exp(-schedule.lambda(t_end));
      const double a = std::atan(smax), b = std::atan(smin);
      for (int i = 0; i <= steps; ++i)
        g[i] = schedule.t_of_lambda(-std::log(std::tan(a + (i / N) * (b - a))));
      break;
    }
    case GridKind::Beta: {
      // Lee et al. (2024): the fraction of the way from t_end to t_start at step i is the
      // Beta(0.6, 0.6) quantile of 1 - i/N (docs/theory.md section 6.1).
      for (int i = 0; i <= steps; ++i) {
        const double p = 1.0 - i / N;
        const double q = p <= 0.0 ? 0.0 : p >= 1.0 ? 1.0 : boost::math::ibeta_inv(0.6, 0.6, p);
        g[i] = t_end + q * (t_start - t_end);
      }
      break;
    }
    case GridKind::LinearQuadratic: {
      // Mochi's schedule (docs/theory.md section 6.1): v_i, the fraction of the way from t_start
      // to t_end, rises linearly to 0.025 over the first L = floor(N/2) steps, then follows the
      // quadratic in i that joins it with the same slope at i = L and reaches 1 at i = N.
      const double thr = 0.025;
      const int L = steps / 2, Q = steps - L;
      for (int i = 0; i <= steps; ++i) {
        double v = 1.0;
        if (steps > 1 && i < L) {
          v = i * thr / L;
        } else if (steps > 1 && i < steps) {
          const double d = L - thr * steps;
          const double qc = d / (L * static_cast<double>(Q) * Q);
          const double lc = thr / L - 2.0 * d / (static_cast<double>(Q) * Q);
          v = qc * i * i + lc * i + qc * L * L;
        } else if (i == 0) {
          v = 0.0;
        }
        g[i] = t_start + v * (t_end - t_start);
      }
      break;
    }
    case GridKind::AysSd1:
    case GridKind::AysSdxl:
    case GridKind::AysSvd: {
      const std::vector<double>& tab = ays_table(kind);
      const double smax = std::exp(-schedule.lambda(t_start)),
                   smin = std::exp(-schedule.lambda(t_end));
      auto near = [](double a, double b) { return std::abs(a - b) <= 1e-3 * b; };
      if (!near(smax, tab.front()) || !near(smin, tab.back())) {
        std::ostringstream os;
        os.precision(6);
        os << who << ": the table is Align Your Steps' for sigma/alpha from " << tab.front()
           << " to " << tab.back() << "; this run goes from " << smax << " (t = " << t_start
           << ") to " << smin << " (t = " << t_end << ")"
           << (kind == GridKind::AysSvd ? "" : " (use --sde vp-sd with its default --t-end)");
        throw std::invalid_argument(os.str());
      }
      // Other step counts: log sigma interpolated linearly in the step fraction.
      const double M = static_cast<double>(tab.size() - 1);
      for (int i = 0; i <= steps; ++i) {
        const double x = (i / N) * M;
        const int j = std::min(static_cast<int>(std::floor(x)), static_cast<int>(M) - 1);
        const double w = x - j;
        const double ls = (1.0 - w) * std::log(tab[static_cast<size_t>(j)]) +
                          w * std::log(tab[static_cast<size_t>(j) + 1]);
        g[i] = schedule.t_of_lambda(-ls);
      }
      break;
    }
    case GridKind::UniformT:
      for (int i = 0; i <= steps; ++i) g[i] = t_start + (i / N) * (t_end - t_start);
      break;
    case GridKind::UniformLambda: {
      const double l0 = schedule.lambda(t_start), l1 = schedule.lambda(t_end);
      if (opt.groups.empty()) {
        for (int i = 0; i <= steps; ++i) g[i] = schedule.t_of_lambda(l0 + (i / N) * (l1 - l0));
        break;
      }
      int sum = 0;
      for (int k : opt.groups) {
        if (k < 1) throw std::invalid_argument(who + ": group sizes must be >= 1");
        sum += k;
      }
      if (sum != steps)
        throw std::invalid_argument(who + ": the groups cover " + std::to_string(sum) +
                                    " steps, the grid has " + std::to_string(steps));
      const double K = static_cast<double>(opt.groups.size());
      size_t i = 0;
      for (size_t j = 0; j < opt.groups.size(); ++j) {
        const double a = l0 + (j / K) * (l1 - l0), b = l0 + ((j + 1) / K) * (l1 - l0);
        const int k = opt.groups[j];
        for (int q = 0; q < k; ++q)
          g[i++] = schedule.t_of_lambda(a + (static_cast<double>(q) / k) * (b - a));
      }
      g[i] = t_end;
      break;
    }
    case GridKind::Quadratic: {
      const double a = std::sqrt(t_start), b = std::sqrt(t_end);
      for (int i = 0; i <= steps; ++i) {
        const double r = a + (i / N) * (b - a);
        g[i] = r * r;
      }
      break;
    }
    case GridKind::Karras: {
      const double smax = std::exp(-schedule.lambda(t_start)),
                   smin = std::exp(-schedule.lambda(t_end));
      const double a = std::pow(smax, 1.0 / opt.rho), b = std::pow(smin, 1.0 / opt.rho);
      for (int i = 0; i <= steps; ++i)
        g[i] = schedule.t_of_lambda(-opt.rho * std::log(a + (i / N) * (b - a)));
      break;
    }
    case GridKind::DdpmUniform:
    case GridKind::DdpmQuadratic: {
      const auto* disc = dynamic_cast<const VPDiscrete*>(&schedule);
      if (!disc)
        throw std::invalid_argument(who + ": DDPM integer grids need the vp-discrete schedule");
      return ddpm_grid(kind, *disc, steps, t_start, t_end);
    }
  }
  g.front() = t_start;
  g.back() = t_end;
  for (size_t i = 1; i < g.size(); ++i) {
    if (!(g[i] < g[i - 1])) {
      std::ostringstream os;
      os << who << ": " << steps << " steps do not give strictly decreasing times (t[" << i - 1
         << "] = " << g[i - 1] << ", t[" << i << "] = " << g[i] << "); use fewer steps";
      throw std::invalid_argument(os.str());
    }
  }
  return g;
}

}  // namespace sdekit

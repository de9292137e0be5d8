#!/usr/bin/env python3
"""Sample for sample against the reference implementations.

Runs DPM-Solver's official dpm_solver_pytorch.py and k-diffusion's k_diffusion/sampling.py on an
exact Gaussian mixture (float64, its closed-form score), and sdekit's `sample` with the matching
--compat preset from the same x_T (and, for the stochastic samplers, the same standard-normal
draws through --noise), then prints the largest relative difference per sampler.

  python3 scripts/compare_references.py --dpm-solver DIR --k-diffusion DIR [--sdekit build/apps/sdekit]

DIR are checkouts of https://github.com/LuChengTHU/dpm-solver and
https://github.com/crowsonkb/k-diffusion (neither is part of sdekit). Needs Debian's python3-torch,
python3-numpy and python3-scipy; k-diffusion's optional imports (torchsde, torchdiffeq, its utils)
are replaced by stand-ins, as none of the samplers compared uses them.
"""
import argparse, json, os, subprocess, sys, tempfile, types

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
MIX = {"weights": [0.35, 0.65],
       "means": [[0.5, -1.0, 0.3], [-0.8, 0.6, 1.2]],
       "covariances": [[[0.4, 0.1, 0.0], [0.1, 0.3, 0.05], [0.0, 0.05, 0.2]],
                       [[0.25, -0.05, 0.02], [-0.05, 0.35, 0.0], [0.02, 0.0, 0.15]]]}
W = torch.tensor(MIX["weights"]); MU = torch.tensor(MIX["means"]); C = torch.tensor(MIX["covariances"])
D = MU.shape[1]


def score(x, a, s):
    """Score of the noised mixture sum_k w_k N(a mu_k, a^2 C_k + s^2 I) at rows x [n, D]."""
    S = a * a * C + s * s * torch.eye(D)                    # [K, D, D]
    diff = x.unsqueeze(1) - a * MU.unsqueeze(0)            # [n, K, D]
    sol = torch.einsum("kij,nkj->nki", torch.linalg.inv(S), diff)
    logp = torch.log(W) - 0.5 * (diff * sol).sum(-1) - 0.5 * torch.logdet(S)
    r = torch.softmax(logp, dim=1)
    return -(r.unsqueeze(-1) * sol).sum(1)


def load_kdiffusion(root):
    for name, attrs in (("torchsde", {}), ("torchdiffeq", {"odeint": None})):
        mod = types.ModuleType(name); mod.__dict__.update(attrs); sys.modules[name] = mod
    pkg = types.ModuleType("k_diffusion"); pkg.__path__ = [os.path.join(root, "k_diffusion")]
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
    sys.modules["k_diffusion"] = pkg; sys.modules["k_diffusion.utils"] = utils; pkg.utils = utils
    import importlib.util
    spec = importlib.util.spec_from_file_location("k_diffusion.sampling",
                                                  os.path.join(root, "k_diffusion", "sampling.py"))
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dpm-solver", required=True)
    ap.add_argument("--k-diffusion", required=True)
    ap.add_argument("--sdekit", default="build/apps/sdekit")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sdekit-compare-")
    path = lambda n: os.path.join(tmp, n)
    json.dump(MIX, open(path("mix.json"), "w"))
    rng = np.random.default_rng(3)
    xT_vp, xT_edm = rng.standard_normal((16, D)), 80.0 * rng.standard_normal((16, D))
    noise = rng.standard_normal((60, 16, D))
    np.save(path("xT_vp.npy"), xT_vp); np.save(path("xT_edm.npy"), xT_edm); np.save(path("noise.npy"), noise)

    def sdekit(out, *args):
        subprocess.run([a.sdekit, "sample", "--model", "gmm:" + path("mix.json"), "--dtype", "float64",
                        "--out", path(out), *args], check=True, stdout=subprocess.DEVNULL)
        return np.load(path(out))

    rel = lambda x, y: float(np.abs(x - y).max() / np.abs(y).max())
    rows = []
    sys.path.insert(0, a.dpm_solver)
    import dpm_solver_pytorch as dps
    ns = dps.NoiseScheduleVP("linear", continuous_beta_0=0.1, continuous_beta_1=20.0)

    def eps_fn(x, t):
        t = t.reshape(-1).expand(x.shape[0])
        al, sg = ns.marginal_alpha(t), ns.marginal_std(t)
        return torch.cat([-sg[i] * score(x[i:i + 1], al[i], sg[i]) for i in range(x.shape[0])])

    x0 = torch.from_numpy(xT_vp)
    grids = {"time_uniform": "uniform-t", "logSNR": "uniform-lambda", "time_quadratic": "quadratic"}
    for K in (1, 2, 3):
        for skip, grid in grids.items():
            worst = 0.0
            for N in (5, 7, 10, 12):
                ref = dps.DPM_Solver(eps_fn, ns, algorithm_type="dpmsolver").sample(
                    x0.clone(), steps=N, t_start=1.0, t_end=1e-3, order=K, skip_type=skip,
                    method="singlestep", lower_order_final=True).numpy()
                got = sdekit("s.npy", "--sde", "vp-linear", "--x-init", path("xT_vp.npy"), "--sampler",
                             f"dpm-solver-{K}", "--nfe", str(N), "--grid", grid, "--compat", "dpm-solver")
                worst = max(worst, rel(got, ref))
            rows.append((f"dpm-solver-{K} --grid {grid} (NFE 5, 7, 10, 12)",
                         f"sample(order={K}, method='singlestep', skip_type='{skip}')", worst))
    for K in (2, 3):
        for skip, grid in grids.items():
            worst = 0.0
            for N in (5, 8, 12, 20):
                ref = dps.DPM_Solver(eps_fn, ns, algorithm_type="dpmsolver++").sample(
                    x0.clone(), steps=N, t_start=1.0, t_end=1e-3, order=K, skip_type=skip,
                    method="multistep", lower_order_final=True).numpy()
                got = sdekit("s.npy", "--sde", "vp-linear", "--x-init", path("xT_vp.npy"), "--sampler",
                             f"dpmpp-{K}m", "--steps", str(N), "--grid", grid, "--compat", "dpm-solver")
                worst = max(worst, rel(got, ref))
            rows.append((f"dpmpp-{K}m --grid {grid} (steps 5, 8, 12, 20)",
                         f"sample(order={K}, method='multistep', algorithm_type='dpmsolver++', skip_type='{skip}')", worst))
    for K in (2, 3):
        for algo, name in (("dpmsolver", "dpm-solver-"), ("dpmsolver++", "dpmpp-")):
            ref = dps.DPM_Solver(eps_fn, ns, algorithm_type=algo).sample(
                x0.clone(), t_start=1.0, t_end=1e-3, order=K, method="adaptive", atol=0.0078, rtol=0.05).numpy()
            s = name + ("12" if K == 2 else "23")
            got = sdekit("s.npy", "--sde", "vp-linear", "--x-init", path("xT_vp.npy"), "--sampler", s,
                         "--compat", "dpm-solver")
            rows.append((s, f"sample(order={K}, method='adaptive', algorithm_type='{algo}')", rel(got, ref)))

    kd = load_kdiffusion(a.k_diffusion)

    def den(x, sigma, **kw):
        sg = sigma.reshape(-1).expand(x.shape[0])
        return torch.cat([x[i:i + 1] + sg[i] ** 2 * score(x[i:i + 1], 1.0, float(sg[i])) for i in range(x.shape[0])])

    class Replay:
        def __init__(self): self.k = 0
        def __call__(self, s, sn):
            self.k += 1
            return torch.from_numpy(noise[self.k - 1]).clone()

    xe = torch.from_numpy(xT_edm)
    pairs = [("heun", "sample_heun", {}, []), ("euler", "sample_euler", {}, []), ("dpm-2", "sample_dpm_2", {}, []),
             ("lms", "sample_lms", {}, []), ("dpmpp-2m", "sample_dpmpp_2m", {}, []),
             ("euler-ancestral", "sample_euler_ancestral", None, []),
             ("dpmpp-2s-ancestral", "sample_dpmpp_2s_ancestral", None, []),
             ("dpmpp-sde", "sample_dpmpp_sde", None, []), ("dpmpp-2m-sde", "sample_dpmpp_2m_sde", None, []),
             ("dpmpp-2m-sde", "sample_dpmpp_2m_sde", {"solver_type": "heun"}, ["--sde-solver", "heun"]),
             ("dpmpp-3m-sde", "sample_dpmpp_3m_sde", None, [])]
    for name, fn, kw, extra in pairs:
        worst = 0.0
        for n in (5, 9, 20):
            sig = kd.get_sigmas_karras(n, 0.002, 80.0, 7.0)
            args = dict(kw or {})
            flags = ["--sde", "edm", "--grid", "karras", "--x-init", path("xT_edm.npy"), "--sampler", name,
                     "--steps", str(n), "--compat", "k-diffusion", *extra]
            if kw is None or name == "dpmpp-2m-sde":
                args["noise_sampler"] = Replay()
                flags += ["--noise", path("noise.npy")]
            ref = getattr(kd, fn)(den, xe.clone(), sig, disable=True, **args).numpy()
            worst = max(worst, rel(sdekit("s.npy", *flags), ref))
        rows.append((" ".join([name, *extra, "--sde edm --grid karras (steps 5, 9, 20)"]), fn, worst))

    print("| sdekit (with its reference's --compat) | reference | max relative difference |")
    print("|---|---|---:|")
    for s, r, v in rows:
        print(f"| `{s.strip()}` | `{r}` | {v:.1e} |")
    return 0 if all(v < 1e-10 for _, _, v in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

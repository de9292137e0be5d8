#!/usr/bin/python3
"""Reference data for tests/test_stats_io.cpp.

Writes, under tests/data/:
  frechet_scipy.json            Gaussian pairs and their Frechet distance computed the way
                                pytorch-fid's calculate_frechet_distance does (scipy.linalg.sqrtm
                                of C1 C2), plus the values stored in the three .npz fixtures;
  stats_savez.npz               numpy.savez: float64 mu [5], float64 sigma [5, 5] (no n, like
                                the files pytorch-fid writes);
  stats_savez_compressed.npz    numpy.savez_compressed: float32 mu [6], float32 sigma [6, 6]
                                saved in Fortran order, int64 n;
  stats_big_endian.npz          numpy.savez: big-endian float64 mu [4], big-endian float32 sigma
                                [4, 4] in Fortran order, big-endian int64 n.
The Fortran-ordered sigmas are made slightly asymmetric (see sample_stats) so that their element
order matters.

Rerun from the repository root with Debian's Python (bookworm: python3-numpy, python3-scipy):
  /usr/bin/python3 scripts/frechet_reference.py
The numbers are deterministic for given numpy/scipy versions (the zip timestamps are not); the
versions that produced the checked-in data (numpy 1.24.2, scipy 1.10.1) are recorded in the JSON
("numpy", "scipy").
"""
import json
import os

import numpy as np
import scipy
import scipy.linalg

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


def frechet_distance_scipy(mu1, c1, mu2, c2, eps=1e-6):
    """||mu1 - mu2||^2 + Tr(C1) + Tr(C2) - 2 Tr(sqrtm(C1 C2)), as in pytorch-fid.

    sqrtm is scipy's general (Schur) matrix square root of the product C1 C2. When it is not
    finite, eps is added to both diagonals first; a complex result must have a negligible
    imaginary diagonal (|imag| <= 1e-3) and only its real part is kept.
    """
    diff = mu1 - mu2
    root, _ = scipy.linalg.sqrtm(c1 @ c2, disp=False)
    offset_used = False
    if not np.isfinite(root).all():
        offset = np.eye(c1.shape[0]) * eps
        root = scipy.linalg.sqrtm((c1 + offset) @ (c2 + offset))
        offset_used = True
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            raise ValueError("imaginary component %g" % np.max(np.abs(root.imag)))
        root = root.real
    fd = float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(root))
    return fd, offset_used


def spd_with_eigenvalues(eigenvalues, rng):
    """Q diag(eigenvalues) Q^T with Q a random orthogonal matrix (QR of a Gaussian matrix)."""
    d = len(eigenvalues)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diagonal(r))
    c = (q * eigenvalues) @ q.T
    return 0.5 * (c + c.T)


def random_spd(d, rng):
    """A Wishart-like SPD matrix A A^T / d + 0.1 I."""
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def asymmetry(c1, c2):
    p = c1 @ c2
    return float(np.linalg.norm(p - p.T) / np.linalg.norm(p))


def make_pairs():
    pairs = []

    def add(name, seed, mu1, c1, mu2, c2):
        fd, offset_used = frechet_distance_scipy(mu1, c1, mu2, c2)
        pairs.append({
            "name": name,
            "seed": seed,
            "d": int(mu1.shape[0]),
            "mu1": mu1.tolist(),
            "sigma1": c1.tolist(),
            "mu2": mu2.tolist(),
            "sigma2": c2.tolist(),
            "fd": fd,
            "cond1": float(np.linalg.cond(c1)),
            "cond2": float(np.linalg.cond(c2)),
            "asymmetry_c1c2": asymmetry(c1, c2),
            "eps_offset_used": offset_used,
        })

    for name, seed, d in [("random-d2", 11, 2), ("random-d8", 12, 8), ("random-d32", 13, 32)]:
        rng = np.random.default_rng(seed)
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        add(name, seed, mu1, random_spd(d, rng), mu2, random_spd(d, rng))

    # Condition number ~1e6 for both covariances, eigenvalues log-spaced over [1e-3, 1e3].
    seed = 14
    rng = np.random.default_rng(seed)
    d = 8
    ev = np.logspace(-3, 3, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    add("ill-conditioned-d8", seed, mu1, spd_with_eigenvalues(ev, rng), mu2,
        spd_with_eigenvalues(ev[::-1].copy() * 0.5, rng))

    # Strongly anisotropic covariances with unrelated eigenbases: C1 C2 is far from symmetric.
    seed = 15
    rng = np.random.default_rng(seed)
    d = 8
    mu1 = rng.standard_normal(d)
    mu2 = mu1 + 0.01 * rng.standard_normal(d)
    c1 = spd_with_eigenvalues(np.geomspace(0.01, 100, d), rng)
    c2 = spd_with_eigenvalues(np.geomspace(100, 0.01, d), rng)
    add("non-symmetric-product-d8", seed, mu1, c1, mu2, c2)

    # Nearly equal Gaussians in d = 32: the distance is small against the traces.
    seed = 16
    rng = np.random.default_rng(seed)
    d = 32
    mu1 = rng.standard_normal(d)
    c1 = random_spd(d, rng)
    e = rng.standard_normal((d, d)) * 0.02
    add("close-d32", seed, mu1, c1, mu1 + 0.05 * rng.standard_normal(d), c1 + 0.5 * (e + e.T))

    return pairs


def sample_stats(seed, n, d, dtype, skew=0.0):
    """mu and the unbiased covariance of n Gaussian samples, cast to dtype.

    skew > 0 adds skew * (1 + i + j / d) above the diagonal: the matrix is then no longer
    symmetric, so a reader that transposes a Fortran-ordered sigma by mistake is caught.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)
    sigma = np.cov(x, rowvar=False)
    i, j = np.indices((d, d))
    sigma = sigma + np.where(j > i, skew * (1 + i + j / d), 0.0)
    return x.mean(axis=0).astype(dtype), sigma.astype(dtype)


def values(mu, sigma):
    # float32 values widen exactly to float64, so the JSON holds exactly what the file holds.
    return {"mu": mu.astype(np.float64).tolist(), "sigma": sigma.astype(np.float64).tolist()}


def make_fixtures():
    fixtures = {}

    mu, sigma = sample_stats(21, 50, 5, np.float64)
    np.savez(os.path.join(DATA, "stats_savez.npz"), mu=mu, sigma=sigma)
    fixtures["stats_savez.npz"] = dict(values(mu, sigma), n=None, writer="numpy.savez",
                                       dtype="float64", fortran_sigma=False)

    n = 40
    mu, sigma = sample_stats(22, n, 6, np.float32, skew=0.01)
    sigma_f = np.asfortranarray(sigma)
    assert sigma_f.flags.f_contiguous and not sigma_f.flags.c_contiguous
    np.savez_compressed(os.path.join(DATA, "stats_savez_compressed.npz"), mu=mu, sigma=sigma_f,
                        n=np.int64(n))
    fixtures["stats_savez_compressed.npz"] = dict(values(mu, sigma), n=n,
                                                  writer="numpy.savez_compressed",
                                                  dtype="float32", fortran_sigma=True)

    n = 30
    mu, sigma = sample_stats(23, n, 4, np.float64, skew=0.01)
    mu_be = mu.astype(">f8")
    sigma_be = np.asfortranarray(sigma.astype(">f4"))
    np.savez(os.path.join(DATA, "stats_big_endian.npz"), mu=mu_be, sigma=sigma_be,
             n=np.array(n, dtype=">i8"))
    fixtures["stats_big_endian.npz"] = dict(values(mu_be, sigma_be), n=n, writer="numpy.savez",
                                            dtype="big-endian float64 mu, float32 sigma",
                                            fortran_sigma=True)

    # Check that numpy reads back exactly what is recorded.
    for name, rec in fixtures.items():
        with np.load(os.path.join(DATA, name)) as f:
            assert np.array_equal(f["mu"].astype(np.float64), np.array(rec["mu"]))
            assert np.array_equal(f["sigma"].astype(np.float64), np.array(rec["sigma"]))
            if rec["n"] is not None:
                assert int(f["n"]) == rec["n"]
    return fixtures


def main():
    os.makedirs(DATA, exist_ok=True)
    out = {
        "generator": "scripts/frechet_reference.py",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "formula": "||mu1-mu2||^2 + Tr(C1) + Tr(C2) - 2 Tr(real(scipy.linalg.sqrtm(C1 @ C2)))",
        "pairs": make_pairs(),
        "fixtures": make_fixtures(),
    }
    path = os.path.join(DATA, "frechet_scipy.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for p in out["pairs"]:
        print("%-26s d=%2d fd=%.17g cond=%.3g/%.3g asym=%.3g" %
              (p["name"], p["d"], p["fd"], p["cond1"], p["cond2"], p["asymmetry_c1c2"]))
    print("wrote %s (%d bytes)" % (path, os.path.getsize(path)))


if __name__ == "__main__":
    main()

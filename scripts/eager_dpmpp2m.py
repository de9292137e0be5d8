#!/usr/bin/env python3
"""DPM-Solver++ 2M at 10 NFE as a plain PyTorch eager loop, for comparison with sdekit's
bench/cuda_bench ("unet-ts/.../dpmpp-2m": the same model, update, grid and batch sizes).

  python3 scripts/eager_dpmpp2m.py data/fmnist/unet_ts.pt [--device cuda] [--repeats 5]

The model is the TorchScript export of the committed U-Net (scripts/export_unet_torchscript.py),
the SDE VP-linear (beta 0.1 to 20), the grid 10 steps uniform in lambda from t = 1 to 1e-3 (the
formulas of docs/theory.md sections 1 and 4.6). Prints the median seconds per run and samples per
second for batches 256 and 1024.
"""
import argparse, math, statistics, time

import torch

B0, B1 = 0.1, 20.0


def log_alpha(t):
    return -0.25 * t * t * (B1 - B0) - 0.5 * t * B0


def lam(t):
    la = log_alpha(t)
    return la - 0.5 * math.log(-math.expm1(2.0 * la))


def t_of_lambda(l):
    # log alpha = -0.5 log(1 + e^(-2 lambda)), then the quadratic in t.
    la = -0.5 * math.log1p(math.exp(-2.0 * l))
    a, b = 0.25 * (B1 - B0), 0.5 * B0
    return (-b + math.sqrt(b * b - 4.0 * a * la)) / (2.0 * a)


def run(model, x, times):
    old, h_last = None, None
    for i in range(len(times) - 1):
        s, t = times[i], times[i + 1]
        a_s, a_t = math.exp(log_alpha(s)), math.exp(log_alpha(t))
        sg_s, sg_t = math.sqrt(1 - a_s * a_s), math.sqrt(1 - a_t * a_t)
        h = lam(t) - lam(s)
        eps = model(x, torch.full((x.shape[0],), s, device=x.device))
        x0 = (x - sg_s * eps) / a_s
        d = x0 if old is None else (1 + 1 / (2 * h_last / h)) * x0 - (1 / (2 * h_last / h)) * old
        x = (sg_t / sg_s) * x - a_t * math.expm1(-h) * d
        old, h_last = x0, h
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    dev = torch.device(a.device)
    model = torch.jit.load(a.model, map_location=dev).eval()
    l0, l1 = lam(1.0), lam(1e-3)
    times = [1.0] + [t_of_lambda(l0 + (i / 10) * (l1 - l0)) for i in range(1, 10)] + [1e-3]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for batch in (256, 1024):
            x = torch.randn(batch, 1, 28, 28, device=dev)
            run(model, x, times); sync()
            secs = []
            for _ in range(a.repeats):
                t0 = time.perf_counter(); run(model, x, times); sync()
                secs.append(time.perf_counter() - t0)
            m = statistics.median(secs)
            print(f"eager dpmpp-2m NFE 10 batch {batch}: {m * 1e3:.2f} ms per run, "
                  f"{batch / m:.0f} samples/s (median of {a.repeats}, {torch.__version__}, {dev})")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Example score networks exported as TorchScript, for tests/test_torchscript_model.cpp.

Writes, under tests/data/torchscript/:
  eps_mlp.pt       unconditional eps-model on 2-D data: forward(x [n, 2], t [n]) -> [n, 2];
  eps_mlp_cond.pt  class-conditional eps-model: forward(x [n, 2], t [n], y [n] int64) -> [n, 2],
                   with an int attribute num_classes = 3 (labels 0..2, and 3 the null label);
  reference.json   a few inputs (x, t, y) and the outputs the Python side computed for them.

Both networks are small MLPs with a sinusoidal feature of the time t (the SDE's own time
variable, as sdekit passes it); their weights come from a fixed seed and are not trained: the
files exist to check that the C++ side loads them and reproduces Python's outputs.

Rerun from the repository root with Debian's Python and PyTorch (bookworm: python3-torch):
  /usr/bin/python3 scripts/export_torchscript_example.py
The .pt files must stay loadable by LibTorch 1.13 (Debian's libtorch-dev), so export them with
PyTorch 1.13 (Debian's python3-torch 1.13.1, which reports itself as 1.13.0a0): a newer PyTorch
may write a file format the C++ side cannot read. The version used is recorded in the JSON
("torch"). The weights are drawn with torch.manual_seed, so the outputs are deterministic for
one PyTorch version.
"""
import json
import math
import os

import torch
from torch import nn

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                    "torchscript")
SEED = 20240601
NUM_CLASSES = 3


class TimeFeature(nn.Module):
    """[sin(f_k t), cos(f_k t)] for K frequencies f_k spaced geometrically from 1 to 100."""

    def __init__(self, k: int = 8):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), k)))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        a = t.unsqueeze(1) * self.freqs.unsqueeze(0)
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class EpsMLP(nn.Module):
    """eps(x, t): an MLP on [x, time feature]."""

    def __init__(self, dim: int = 2, hidden: int = 32):
        super().__init__()
        self.time = TimeFeature()
        self.net = nn.Sequential(nn.Linear(dim + 16, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.time(t)], dim=1))


class CondEpsMLP(nn.Module):
    """eps(x, t, y): the time feature plus a learnt embedding of the label y in 0..num_classes,
    where num_classes is the null (unconditional) label."""

    def __init__(self, num_classes: int, dim: int = 2, hidden: int = 32):
        super().__init__()
        self.num_classes = num_classes
        self.time = TimeFeature()
        self.label = nn.Embedding(num_classes + 1, 16)
        self.net = nn.Sequential(nn.Linear(dim + 16, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.time(t) + self.label(y)
        return self.net(torch.cat([x, h], dim=1))


def values(t: torch.Tensor):
    """Exact decimal values (float32 -> float64 is exact; Python's repr round-trips)."""
    return t.detach().double().tolist() if t.is_floating_point() else t.tolist()


def main():
    os.makedirs(DATA, exist_ok=True)
    torch.manual_seed(SEED)
    uncond = torch.jit.script(EpsMLP().eval())
    cond = torch.jit.script(CondEpsMLP(NUM_CLASSES).eval())

    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(6, 2, generator=gen)
    t = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.05, 0.001])
    y = torch.tensor([0, 1, 2, NUM_CLASSES, 1, 0], dtype=torch.int64)
    null = torch.full_like(y, NUM_CLASSES)
    with torch.no_grad():
        out_uncond = uncond(x, t)
        out_cond = cond(x, t, y)
        out_null = cond(x, t, null)

    uncond.save(os.path.join(DATA, "eps_mlp.pt"))
    cond.save(os.path.join(DATA, "eps_mlp_cond.pt"))
    ref = {
        "torch": torch.__version__,
        "seed": SEED,
        "param": "eps",
        "num_classes": NUM_CLASSES,
        "x": values(x),
        "t": values(t),
        "y": values(y),
        "eps_mlp": values(out_uncond),
        "eps_mlp_cond": values(out_cond),
        "eps_mlp_cond_null": values(out_null),
    }
    with open(os.path.join(DATA, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    for name in ("eps_mlp.pt", "eps_mlp_cond.pt"):
        print(name, os.path.getsize(os.path.join(DATA, name)), "bytes")


if __name__ == "__main__":
    main()

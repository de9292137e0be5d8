#!/usr/bin/python3
"""A TorchScript classifier for tests/test_guidance.cpp: the exact classifier of ring2d.

Writes tests/data/torchscript/ring2d_classifier.pt, a module forward(x [n, 2], t [n]) -> logits
[n, 8] computing, in float64, the log-joints of the 8 components of sdekit's ring2d mixture
(means 2 (cos 2 pi k / 8, sin 2 pi k / 8), covariance 0.01 I, equal weights) noised under the
VP-linear SDE (beta from 0.1 to 20 on [0, 1]): log alpha(t) = -(20 - 0.1) t^2 / 4 - 0.1 t / 2,
sigma^2 = 1 - alpha^2, logits_k = -|x - alpha mu_k|^2 / (2 (0.01 alpha^2 + sigma^2)) (the terms
shared by all k dropped). Its gradient through autograd must equal sdekit's closed-form
classifier gradient.

Rerun from the repository root with Debian's Python and PyTorch (python3-torch 1.13, so that
LibTorch 1.13 reads the file):
  /usr/bin/python3 scripts/export_torchscript_classifier.py
"""
import math
import os

import torch
from torch import nn

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                    "torchscript")


class Ring2dClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        self.register_buffer("means", 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        log_alpha = -0.25 * t * t * (20.0 - 0.1) - 0.5 * t * 0.1
        alpha = torch.exp(log_alpha).unsqueeze(1)
        var = 0.01 * alpha * alpha + (1.0 - alpha * alpha)
        d = x.unsqueeze(1) - alpha.unsqueeze(2) * self.means.unsqueeze(0)
        return -(d * d).sum(-1) / (2.0 * var)


def main():
    os.makedirs(DATA, exist_ok=True)
    m = torch.jit.script(Ring2dClassifier())
    m.save(os.path.join(DATA, "ring2d_classifier.pt"))
    print("wrote", os.path.join(DATA, "ring2d_classifier.pt"), "with torch", torch.__version__)


if __name__ == "__main__":
    main()

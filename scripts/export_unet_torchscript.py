#!/usr/bin/env python3
"""Exports the committed Fashion-MNIST U-Net (data/fmnist/unet.pt) as a TorchScript module.

The architecture is written again here in PyTorch, layer for layer as networks/unet.cpp and
networks/mlp.cpp build it, and the weights are read from sdekit's archive. The module's
forward(x, t) returns eps for class LABEL (default 0), so that `--model torchscript:FILE.pt
--param eps --event-shape 1,28,28` samples the same model as `--model fmnist --class LABEL`
(tests/test_torchscript_model.cpp checks it), and scripts/eager_dpmpp2m.py runs it in plain
PyTorch for comparison.

  python3 scripts/export_unet_torchscript.py [--label 0] [--out data/fmnist/unet_ts.pt]

Needs Debian's python3-torch.
"""
import argparse, json, math

import torch
from torch import nn
import torch.nn.functional as F


class Embedding(nn.Module):
    def __init__(self, c, out_dim):
        super().__init__()
        self.time_dim, self.time_scale = c["time_dim"], float(c["time_scale"])
        self.lin1 = nn.Linear(c["time_dim"], out_dim)
        self.lin2 = nn.Linear(out_dim, out_dim)
        self.classes = nn.Embedding(c["num_classes"] + 1, out_dim)

    def forward(self, t, y):
        half = self.time_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = (t.float() * self.time_scale).unsqueeze(1) * freqs.unsqueeze(0)
        e = torch.cat([torch.sin(args), torch.cos(args)], 1)
        return self.lin2(F.silu(self.lin1(e))) + self.classes(y)


def conv3(i, o, stride=1):
    return nn.Conv2d(i, o, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    def __init__(self, i, o, temb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, i)
        self.conv1 = conv3(i, o)
        self.proj = nn.Linear(temb, o)
        self.norm2 = nn.GroupNorm(groups, o)
        self.conv2 = conv3(o, o)
        self.skip = nn.Conv2d(i, o, 1) if i != o else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.proj(F.silu(temb)).unsqueeze(-1).unsqueeze(-1)
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    def __init__(self, c, label):
        super().__init__()
        C, w, g = c["event_shape"][0], c["width"], c["groups"]
        temb, mult, depth = 4 * w, c["channel_mult"], c["depth"]
        self.label = label
        self.emb = Embedding(c, temb)
        self.conv_in = conv3(C, w)
        skips, ch = [w], w
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        self.names = {}
        for i, m in enumerate(mult):
            for k in range(depth):
                self.down.append(ResBlock(ch, w * m, temb, g)); self.names[f"down{i}_{k}"] = ("down", len(self.down) - 1)
                ch = w * m; skips.append(ch)
            if i + 1 < len(mult):
                self.downsample.append(conv3(ch, ch, 2)); self.names[f"downsample{i}"] = ("downsample", len(self.downsample) - 1)
                skips.append(ch)
        self.mid1, self.mid2 = ResBlock(ch, ch, temb, g), ResBlock(ch, ch, temb, g)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(mult))):
            for k in range(depth + 1):
                s = skips.pop()
                self.up.append(ResBlock(ch + s, w * mult[i], temb, g)); self.names[f"up{i}_{k}"] = ("up", len(self.up) - 1)
                ch = w * mult[i]
            if i > 0:
                self.upsample.append(conv3(ch, ch)); self.names[f"upsample{i}"] = ("upsample", len(self.upsample) - 1)
        self.norm_out = nn.GroupNorm(g, ch)
        self.conv_out = conv3(ch, C)
        self.levels, self.blocks = len(mult), depth

    def forward(self, x, t):
        y = torch.full((x.shape[0],), self.label, dtype=torch.long, device=x.device)
        temb = self.emb(t.reshape(-1).expand(x.shape[0]), y)
        h = self.conv_in(x.float())
        hs = [h]
        d = 0
        for m in self.down:
            h = m(h, temb)
            hs.append(h)
            d += 1
            if d % self.blocks == 0 and d // self.blocks < self.levels:
                for j, ds in enumerate(self.downsample):
                    if j == d // self.blocks - 1:
                        h = ds(h)
                hs.append(h)
        h = self.mid2(self.mid1(h, temb), temb)
        u = 0
        for m in self.up:
            h = m(torch.cat([h, hs.pop()], 1), temb)
            u += 1
            if u % (self.blocks + 1) == 0 and u // (self.blocks + 1) < self.levels:
                skip = hs[-1]
                h = F.interpolate(h, size=[skip.shape[2], skip.shape[3]], mode="nearest")
                for j, us in enumerate(self.upsample):
                    if j == u // (self.blocks + 1) - 1:
                        h = us(h)
        return self.conv_out(F.silu(self.norm_out(h))).to(x.dtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="data/fmnist/unet.pt")
    ap.add_argument("--label", type=int, default=0)
    ap.add_argument("--out", default="data/fmnist/unet_ts.pt")
    a = ap.parse_args()
    archive = torch.jit.load(a.src, map_location="cpu")
    c = json.loads(archive.config)
    assert c["arch"] == "unet" and c["param"] == "eps", c
    net = UNet(c, a.label)
    weights = dict(archive.weights.named_parameters())
    state = {}
    for name, p in weights.items():
        head, rest = name.split(".", 1)
        if head in net.names:
            kind, idx = net.names[head]
            state[f"{kind}.{idx}.{rest}"] = p
        else:
            state[name] = p
    net.load_state_dict(state, strict=True)
    net.eval()
    scripted = torch.jit.script(net)
    scripted.save(a.out)
    print(f"wrote {a.out}: {sum(p.numel() for p in net.parameters())} parameters, class {a.label}")


if __name__ == "__main__":
    main()

"""PyTorch reference for the amun-kernels benchmarks (same shapes, same thread count).

Prints the tables of `crates/kernels/examples/compare.rs` and `benches/benches/kernels.rs` for
PyTorch on CPU: sgemm peak, per-layer GFLOP/s of the AMUN `small` and `paper` presets (batch
34, 32x32), U-Net and AMUN training steps (batch 34, 32x32, SGD) and inference (1x256x256).

    pip install torch            # optional; never needed by the Rust tests
    python3 benches/pytorch/reference.py [reps] [threads]

Every figure is the median of `reps` (default 7) timed runs after one warm-up run, with the best
run in parentheses (on a shared machine the best run is the closer estimate of the uncontended
speed).
"""
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 7
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
torch.set_num_threads(THREADS)
torch.manual_seed(0)


def median_time(f, reps=REPS):
    """(median, best) seconds of `reps` runs after a warm-up run."""
    f()
    ts = []
    for _ in range(reps):
        s = time.perf_counter()
        f()
        ts.append(time.perf_counter() - s)
    return statistics.median(ts), min(ts)


def rate(work, t):
    """`work / t` for the median and the best time, as 'median (best)'."""
    return f"{work / t[0]:.1f} ({work / t[1]:.1f})"


def preset_layers(c, g, widths, bridge):
    """Distinct (c_in, c_out, k, side) conv shapes of an AMUN preset; k = 2: transposed 2x2."""
    v = [(1, c, 3, 32), (c, c, 3, 32), (c, 1, 3, 32), (2 * c, c, 1, 32)]
    v += [(c + l * g, g, 3, 32) for l in range(3)]
    v += [(c + 3 * g, c, 1, 32), (3 * c, c, 1, 32)]
    prev, side = c, 32
    for w in widths:
        v += [(prev, w, 3, side), (w, w, 3, side)]
        prev, side = w, side // 2
    v += [(prev, bridge, 3, side), (bridge, bridge, 3, side)]
    below = bridge
    for w in reversed(widths):
        v.append((below, w, 2, side))
        side *= 2
        v += [(2 * w, w, 3, side), (w, w, 3, side)]
        below = w
    v.append((widths[0], 1, 1, 32))
    out = []
    for l in v:
        if l not in out:
            out.append(l)
    return out


def layer(b, l):
    ci, co, k, side = l
    x = torch.randn(b, ci, side, side, requires_grad=True)
    if k == 2:
        m = nn.ConvTranspose2d(ci, co, 2, stride=2)
        flops = 2 * b * ci * co * 4 * side * side
    else:
        m = nn.Conv2d(ci, co, k, padding=k // 2)
        flops = 2 * b * ci * co * k * k * side * side
    with torch.no_grad():
        t_fwd = median_time(lambda: m(x))

    def step():
        m.zero_grad(set_to_none=True)
        x.grad = None
        m(x).sum().backward()

    t_step = median_time(step)
    return rate(flops / 1e9, t_fwd), rate(3 * flops / 1e9, t_step)


def double_conv(ci, co):
    return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1), nn.ReLU(), nn.Conv2d(co, co, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    """The layers of amun_net::UNet (and of compare.rs's U-Net)."""

    def __init__(self, c_in, widths, bridge):
        super().__init__()
        self.enc = nn.ModuleList()
        prev = c_in
        for w in widths:
            self.enc.append(double_conv(prev, w))
            prev = w
        self.bridge = double_conv(prev, bridge)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        below = bridge
        for w in reversed(widths):
            self.up.append(nn.ConvTranspose2d(below, w, 2, stride=2))
            self.dec.append(double_conv(2 * w, w))
            below = w
        self.out = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x):
        skips = []
        for enc in self.enc:
            s = enc(x)
            skips.append(s)
            x = F.max_pool2d(s, 2)
        x = self.bridge(x)
        for up, dec, s in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([s, up(x)], 1))
        return self.out(x)


class Rdb(nn.Module):
    def __init__(self, c, g, layers=3):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c + l * g, g, 3, padding=1) for l in range(layers))
        self.lff = nn.Conv2d(c + layers * g, c, 1)

    def forward(self, x):
        feats = [x]
        for conv in self.convs:
            feats.append(F.relu(conv(torch.cat(feats, 1))))
        return self.lff(torch.cat(feats, 1)) + x


class Amun(nn.Module):
    """amun_net::Amun (crates/net/src/model.rs): shallow features, GMFCA, FFRDB, fusion, U-Net."""

    def __init__(self, n_aux, c, g, widths, bridge):
        super().__init__()
        self.shallow_lst = nn.Conv2d(1, c, 3, padding=1)
        self.shallow_aux = nn.ModuleList(nn.Conv2d(1, c, 3, padding=1) for _ in range(n_aux))
        self.cwe_t = nn.Conv2d(c, c, 3, padding=1)
        self.cwe_a = nn.ModuleList(nn.Conv2d(c, 1, 3, padding=1) for _ in range(n_aux))
        self.fuse = nn.Conv2d(2 * c, c, 1)
        self.rdbs = nn.ModuleList(Rdb(c, g) for _ in range(3))
        self.gff1 = nn.Conv2d(3 * c, c, 1)
        self.gff3 = nn.Conv2d(c, c, 3, padding=1)
        self.fusion = nn.Conv2d(3 * c, c, 1)
        self.unet = UNet(c, widths, bridge)

    def forward(self, x):
        f_t = self.shallow_lst(x[:, :1])
        f_a = [conv(x[:, 1 + i : 2 + i]) for i, conv in enumerate(self.shallow_aux)]
        w_t = torch.sigmoid(self.cwe_t(f_t))
        sum_a = sum(f_a[1:], f_a[0])
        sum_s = sum(torch.sigmoid(cwe(f)) for f, cwe in zip(f_a, self.cwe_a))
        cross = self.fuse(torch.cat([sum_a * w_t, f_t * sum_s], 1))
        h, outs = f_t, []
        for rdb in self.rdbs:
            h = rdb(h)
            outs.append(h)
        ff = self.gff3(self.gff1(torch.cat(outs, 1)))
        return self.unet(self.fusion(torch.cat([f_t, cross, ff], 1)))


def train_and_infer(net, c_in):
    x = torch.randn(34, c_in, 32, 32)
    y = torch.randn(34, 1, 32, 32)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        F.mse_loss(net(x), y).backward()
        opt.step()

    t_step = median_time(step)
    tile = torch.randn(1, c_in, 256, 256)
    with torch.no_grad():
        t_inf = median_time(lambda: net(tile))
    return t_step, (256 * 256 / t_inf[0] / 1e6, 256 * 256 / t_inf[1] / 1e6)


def main():
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}")
    n = 2048
    a = torch.randn(n, n)
    t = median_time(lambda: a @ a)
    print(f"\nsgemm peak (torch.mm, {n}^3): {rate(2 * n**3 / 1e9, t)} GFLOP/s, median (best)")

    presets = [("small", 16, 16, [16, 32, 64, 128], 256), ("paper", 64, 32, [52, 104, 208, 416], 832)]
    for name, c, g, widths, bridge in presets:
        print(f"\n### `{name}` preset, batch 34, PyTorch GFLOP/s, median (best)\n")
        print("| layer (c_in→c_out, k, side) | torch fwd | torch f+b |")
        print("|---|---|---|")
        for l in preset_layers(c, g, widths, bridge):
            f, b = layer(34, l)
            kind = "up2×2" if l[2] == 2 else f"{l[2]}×{l[2]}"
            print(f"| {l[0]}→{l[1]}, {kind}, {l[3]} | {f} | {b} |")

    print("\n### Training step (batch 34, 32×32, SGD) and inference (1×256×256), PyTorch\n")
    print("| model | step (s), median (best) | inference (Mpx/s), median (best) |")
    print("|---|---|---|")
    for c_in, widths, bridge in [(8, [32, 64, 128, 256], 512), (16, [16, 32, 64, 128], 256), (64, [52, 104, 208, 416], 832)]:
        s, i = train_and_infer(UNet(c_in, widths, bridge), c_in)
        print(f"| U-Net {c_in}; {widths} + {bridge} | {s[0]:.3f} ({s[1]:.3f}) | {i[0]:.3f} ({i[1]:.3f}) |")
    # AMUN with the seven paper covariates, aspect as cos/sin: 8 covariate channels.
    for name, c, g, widths, bridge in presets:
        s, i = train_and_infer(Amun(8, c, g, widths, bridge), 9)
        print(f"| AMUN `{name}` | {s[0]:.3f} ({s[1]:.3f}) | {i[0]:.3f} ({i[1]:.3f}) |")


if __name__ == "__main__":
    main()

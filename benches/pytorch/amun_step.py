"""Median AMUN training-step time in PyTorch, for alternating with the Rust example.

    python3 benches/pytorch/amun_step.py small 7     # or: paper 4

The step is the one of `reference.py` (and of `cargo run --release -p amun-net --example
step_time`): forward on a batch of 34 9x32x32 patches, MSE, backward, SGD with lr 1e-3; then
inference on one 1x9x256x256 tile. Prints `torch <preset> step <median seconds> inference
<median Mpx/s>`. Alternate it with the Rust example to get paired ratios
on a machine whose speed drifts:

    for i in 1 2 3 4 5; do
      target/release/examples/step_time small 7; python3 benches/pytorch/amun_step.py small 7
    done
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
PRESETS = {"small": (16, 16, [16, 32, 64, 128], 256), "paper": (64, 32, [52, 104, 208, 416], 832)}


def main():
    preset = sys.argv[1] if len(sys.argv) > 1 else "small"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    sys.argv = sys.argv[:1]  # reference.py reads its own arguments at import
    import reference

    torch.set_num_threads(threads)
    c, g, widths, bridge = PRESETS[preset]
    net = reference.Amun(8, c, g, widths, bridge)
    x, y = torch.randn(34, 9, 32, 32), torch.randn(34, 1, 32, 32)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        F.mse_loss(net(x), y).backward()
        opt.step()

    t_step = reference.median_time(step, n)[0]
    tile = torch.randn(1, 9, 256, 256)
    with torch.no_grad():
        t_inf = reference.median_time(lambda: net(tile), n)[0]
    print(f"torch {preset} step {t_step:.3f} inference {256 * 256 / t_inf / 1e6:.3f} Mpx/s")


if __name__ == "__main__":
    main()

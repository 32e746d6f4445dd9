"""Whole-scene AMUN inference: `amun downscale` against PyTorch's one pass, side by side.

    python3 benches/pytorch/downscale.py --amun target/release/amun \\
        --checkpoint CKPT --scene SCENE_400x800 --scene SCENE_2048 [--rounds 3]

For each scene folder (from `amun synth` or `amun prepare`) and each round, alternately:

- `amun downscale --checkpoint CKPT --scene SCENE --out TMP.tif` at its default settings
  (`--max-memory 1GiB`), timed by `/usr/bin/time -v`: wall time of the whole command (start,
  checkpoint, reading and normalising the covariates, the network, writing the GeoTIFF) and
  peak resident memory;
- PyTorch eager, the same `small` network (`reference.Amun`) with the checkpoint's weights
  (read from `model.safetensors`), one forward pass over a 1 × 9 × H × W tensor of the
  scene's size (padded to a multiple of 16) under `torch.no_grad()`, 2 threads, in a
  child process also under `/usr/bin/time -v`: the time of that pass (after one warm-up
  pass on a 256 × 256 tile) and the child's peak resident memory. The input is standard
  normal noise, the distribution of the normalised inputs; only the network runs, no I/O.

Prints one markdown row per run and the median throughput ratio per scene (amun's pixels/s
over PyTorch's; above 1 means amun's whole command is faster than PyTorch's network alone).
Needs `pip install torch` (never needed by the Rust build or tests).
"""

import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (f32 only), without the safetensors package."""
    import numpy as np

    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"])
    return out


def torch_key(name, levels):
    """The `reference.Amun` parameter name of an amun checkpoint key."""
    s = name
    s = re.sub(r"^shallow\.lst\.", "shallow_lst.", s)
    s = re.sub(r"^shallow\.aux\.", "shallow_aux.", s)
    s = re.sub(r"^gmfca\.", "", s)
    s = re.sub(r"^ffrdb\.rdb\.(\d+)\.conv\.", r"rdbs.\1.convs.", s)
    s = re.sub(r"^ffrdb\.rdb\.", "rdbs.", s)
    s = re.sub(r"^ffrdb\.", "", s)
    s = re.sub(r"^unet\.(enc\.\d+|bridge)\.conv1\.", r"unet.\1.0.", s)
    s = re.sub(r"^unet\.(enc\.\d+|bridge)\.conv2\.", r"unet.\1.2.", s)
    # Decoder levels: amun stores them shallowest first, the reference deepest first.
    m = re.match(r"^unet\.dec\.(\d+)\.(up|conv1|conv2)\.(weight|bias)$", s)
    if m:
        i = levels - 1 - int(m.group(1))
        part = {"up": f"unet.up.{i}", "conv1": f"unet.dec.{i}.0", "conv2": f"unet.dec.{i}.2"}
        s = f"{part[m.group(2)]}.{m.group(3)}"
    return s


def torch_pass(checkpoint, height, width, threads):
    """Child process: one forward pass of the checkpoint's network over height × width."""
    sys.argv = sys.argv[:1]  # reference.py reads its own arguments at import
    sys.path.insert(0, HERE)
    import reference
    import torch

    torch.set_num_threads(threads)
    with open(os.path.join(checkpoint, "checkpoint.json")) as f:
        cfg = json.load(f)["config"]
    n_aux = len(cfg["covariates"]) + (1 if cfg.get("aspect_encoding", "cos_sin") == "cos_sin" else 0)
    net = reference.Amun(n_aux, cfg["channels"], cfg["rdb_growth"], cfg["unet_widths"], cfg["unet_bridge"])
    weights = read_safetensors(os.path.join(checkpoint, "model.safetensors"))
    state = {torch_key(k, len(cfg["unet_widths"])): torch.from_numpy(v.copy()) for k, v in weights.items()}
    net.load_state_dict(state, strict=True)
    net.eval()
    h, w = -(-height // 16) * 16, -(-width // 16) * 16
    with torch.no_grad():
        net(torch.randn(1, 1 + n_aux, 256, 256))
        x = torch.randn(1, 1 + n_aux, h, w)
        t = time.perf_counter()
        net(x)
        dt = time.perf_counter() - t
    print(json.dumps({"seconds": dt}))


def timed(cmd):
    """(wall seconds, peak RSS in MB, stdout) of a command run under /usr/bin/time -v."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return wall, rss / 1024, p.stdout


def scene_size(amun, scene):
    out = subprocess.run([amun, "info", os.path.join(scene, "covariates.tif"), "--json"], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    return info["height"], info["width"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amun", default="target/release/amun")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--scene", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--amun-args", default="", help="extra arguments for amun downscale")
    ap.add_argument("--torch-pass", nargs=2, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_pass:
        torch_pass(a.checkpoint, a.torch_pass[0], a.torch_pass[1], a.threads)
        return
    print(f"load average at start: {os.getloadavg()}")
    print("| scene | run | amun wall (s) | amun Mpx/s | amun peak RSS (MB) | torch pass (s) | torch Mpx/s | torch peak RSS (MB) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for scene in a.scene:
                h, w = scene_size(a.amun, scene)
                out = os.path.join(tmp, "out.tif")
                cmd = [a.amun, "-q", "downscale", "--checkpoint", a.checkpoint, "--scene", scene, "--out", out, "--force"]
                wall, rss, _ = timed(cmd + a.amun_args.split())
                t_wall, t_rss, t_out = timed([sys.executable, __file__, "--checkpoint", a.checkpoint, "--scene", scene, "--threads", str(a.threads), "--torch-pass", str(h), str(w)])
                t_pass = json.loads(t_out.strip().splitlines()[-1])["seconds"]
                mpx = h * w / 1e6
                ratio = (mpx / wall) / (mpx / t_pass)
                ratios.setdefault(f"{h}x{w}", []).append(ratio)
                print(f"| {h}×{w} | {r + 1} | {wall:.2f} | {mpx / wall:.3f} | {rss:.0f} | {t_pass:.2f} | {mpx / t_pass:.3f} | {t_rss:.0f} | {ratio:.2f} |", flush=True)
    for k, v in ratios.items():
        print(f"{k}: median ratio {statistics.median(v):.2f} over {len(v)} pairs")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Share of subnormal and near-zero weights per layer group of an amun checkpoint.

Usage: python3 benches/denormals/level_health.py CHECKPOINT_DIR

Reads `model.safetensors` (numpy only) and prints, per group of weight tensors (rank >= 2;
the first three name components), the share of subnormal weights, of weights below 1e-6,
and the largest |w| (docs/design.md section 4.8).
"""
import json, struct, sys, re
import numpy as np
from collections import OrderedDict
path = sys.argv[1] + "/model.safetensors"
with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8)); h = json.loads(f.read(n)); data = f.read()
groups = OrderedDict()
tot = [0, 0]
for name, t in h.items():
    if name == "__metadata__": continue
    a, b = t["data_offsets"]
    w = np.frombuffer(data[a:b], dtype="<f4")
    if len(t["shape"]) < 2: continue
    g = re.sub(r"\.(weight|bias)$", "", name)
    g = ".".join(g.split(".")[:3])
    sub = int(np.sum((w != 0) & (np.abs(w) < 1.1754944e-38)))
    s = groups.setdefault(g, [0, 0, 0, 0.0])
    s[0] += w.size; s[1] += sub; s[2] += int(np.sum(np.abs(w) < 1e-6)); s[3] = max(s[3], float(np.abs(w).max()))
    tot[0] += w.size; tot[1] += sub
for g, (n, sub, tiny, mx) in groups.items():
    print(f"{g:40s} {n:8d}  subnormal {100*sub/n:5.1f} %  |w|<1e-6 {100*tiny/n:5.1f} %  max|w| {mx:.2e}")
print(f"total {tot[0]} weights, {tot[1]} subnormal ({100*tot[1]/tot[0]:.1f} %)")

#!/usr/bin/env python3
"""Makes a checkpoint whose U-Net bridge and deepest level hold subnormal weights.

The checkpoint the `amun_kernels::flush_denormals` measurement needs (issue 16): a trained
`small` checkpoint held 1.06 M subnormal floats among its 2.0 M parameters, 87 % of the U-Net
bridge and 13-57 % of the deepest encoder and decoder levels. This script makes one of that
kind from any `small` checkpoint, without training: each weight tensor of the bridge is scaled
so that 87 % of its values (the smallest in magnitude) fall below f32's smallest normal number
(2^-126, about 1.18e-38), and each weight tensor of the deepest encoder and decoder level so
that 35 % do; biases and every other tensor are left as they are. It prints the counts.

Usage: subnormal_checkpoint.py IN_CHECKPOINT_DIR OUT_CHECKPOINT_DIR

Only the standard library: safetensors is an 8-byte little-endian header length, a JSON header
naming each tensor's dtype, shape and byte range, then the raw data.
"""

import json
import shutil
import struct
import sys
from array import array
from pathlib import Path

MIN_NORMAL = 2.0**-126
# Share of each weight tensor made subnormal, by name prefix.
TARGETS = {
    "unet.bridge.": 0.87,
    "unet.enc.3.": 0.35,
    "unet.dec.3.": 0.35,
}


def share_for(name):
    if not name.endswith(".weight"):
        return None
    for prefix, share in TARGETS.items():
        if name.startswith(prefix):
            return share
    return None


def is_subnormal(v):
    return v != 0.0 and abs(v) < MIN_NORMAL


def main():
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    if dst.exists():
        sys.exit(f"{dst} exists")
    shutil.copytree(src, dst)
    raw = (src / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = bytearray(raw[8 + n :])
    total = subnormal = 0
    for name, info in sorted(header.items()):
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{name}: dtype {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        values = array("f")
        values.frombytes(bytes(data[begin:end]))
        if sys.byteorder != "little":
            values.byteswap()
        share = share_for(name)
        if share is not None:
            mags = sorted(abs(v) for v in values if v != 0.0)
            q = mags[min(len(mags) - 1, int(share * len(mags)))]
            scale = MIN_NORMAL / q
            # Scaled in f64, rounded to f32 by the array: values below the quantile become
            # subnormal (the last step of the rounding may flush the very smallest to zero).
            values = array("f", (v * scale for v in values))
            count = sum(map(is_subnormal, values))
            print(f"{name}: scaled by {scale:.3e}, {count} of {len(values)} subnormal")
            out = array("f", values)
            if sys.byteorder != "little":
                out.byteswap()
            data[begin:end] = out.tobytes()
        total += len(values)
        subnormal += sum(map(is_subnormal, values))
    (dst / "model.safetensors").write_bytes(raw[: 8 + n] + bytes(data))
    print(f"{subnormal} subnormal values among {total} parameters")


if __name__ == "__main__":
    main()

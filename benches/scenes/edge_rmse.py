"""RMSE of fine LST predictions against the reference, over the whole scene and in bands
along its edges, for choosing the reflection margin of whole-scene inference.

    /usr/bin/python3 benches/scenes/edge_rmse.py REFERENCE.tif PRED_A.tif [PRED_B.tif ...]

Needs GDAL's Python bindings. Prints one markdown row per prediction: RMSE (K) over all
pixels, within 16 and 32 pixels of the edge, and in the interior beyond 128 pixels.
"""

import sys

import numpy as np
from osgeo import gdal


def main():
    ref = gdal.Open(sys.argv[1]).ReadAsArray().astype(np.float64)
    h, w = ref.shape
    rows, cols = np.mgrid[0:h, 0:w]
    dist = np.minimum(np.minimum(rows, h - 1 - rows), np.minimum(cols, w - 1 - cols))
    masks = {"all": dist >= 0, "edge 16": dist < 16, "edge 32": dist < 32, "interior": dist >= 128}
    print("| prediction | " + " | ".join(masks) + " |")
    print("|---" * (len(masks) + 1) + "|")
    for path in sys.argv[2:]:
        p = gdal.Open(path).ReadAsArray().astype(np.float64)
        ok = np.isfinite(p) & np.isfinite(ref)
        cells = []
        for m in masks.values():
            sel = ok & m
            cells.append(f"{np.sqrt(np.mean((p[sel] - ref[sel]) ** 2)):.3f}" if sel.any() else "–")
        print(f"| {path} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

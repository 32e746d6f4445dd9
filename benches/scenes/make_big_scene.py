"""Writes a large synthetic scene folder for `amun downscale` memory and speed runs.

    /usr/bin/python3 benches/scenes/make_big_scene.py OUT_DIR [--size 20000] [--rows N]
        [--factor 10] [--covariates ndvi,landcover,reflectance,mndwi,ndbi,slope,aspect]

Needs GDAL's Python bindings (`apt install python3-gdal`). Writes, as `amun prepare` would:
`scene.json`, `lst_coarse.tif` (size/factor pixels a side, kelvin) and `covariates.tif`
(rows × size pixels; rows defaults to size of 0.01° at float32, one band per covariate, band-interleaved 256 × 256
Deflate tiles with the floating-point predictor, band names as descriptions). The fields are
smooth sums of sines with plausible ranges (land cover: IGBP codes 1–17), made strip by strip,
so the script needs little memory; the files are *not* for committing (a 20000² scene is
several GB: check `df -h` first, delete it afterwards).
"""

import argparse
import json
import os

import numpy as np
from osgeo import gdal

gdal.UseExceptions()


def field(rows, cols, seed, lo, hi):
    """A smooth field in [lo, hi] on the given row and column indices."""
    rng = np.random.default_rng(seed)
    f = np.zeros((len(rows), len(cols)), dtype=np.float32)
    for _ in range(4):
        ky, kx = rng.uniform(0.002, 0.05, 2)
        py, px = rng.uniform(0, 6.3, 2)
        f += np.sin(ky * rows[:, None] + py).astype(np.float32) * np.cos(kx * cols[None, :] + px).astype(np.float32)
    return lo + (hi - lo) * (f / 8.0 + 0.5)


RANGES = {
    "ndvi": (-0.1, 0.9),
    "reflectance": (0.02, 0.4),
    "mndwi": (-0.6, 0.4),
    "ndbi": (-0.5, 0.3),
    "slope": (0.0, 35.0),
    "aspect": (0.0, 359.9),
    "elevation": (0.0, 3000.0),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=20000, help="columns (and rows unless --rows)")
    ap.add_argument("--rows", type=int, help="rows, when the scene is not square")
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--covariates", default="ndvi,landcover,reflectance,mndwi,ndbi,slope,aspect")
    a = ap.parse_args()
    names = a.covariates.split(",")
    n, k = a.size, a.factor
    m = a.rows or n
    assert n % k == 0 and m % k == 0, "the sides must be multiples of the factor"
    os.makedirs(a.out, exist_ok=True)
    res = 0.01
    x0, y0 = 100.0, 45.0
    srs = 'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]'
    gdal.SetCacheMax(256 << 20)
    opts = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE", "PREDICTOR=3", "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER", "NUM_THREADS=2"]
    drv = gdal.GetDriverByName("GTiff")

    nc, mc = n // k, m // k
    lst = drv.Create(os.path.join(a.out, "lst_coarse.tif"), nc, mc, 1, gdal.GDT_Float32, opts[:6])
    lst.SetGeoTransform((x0, res * k, 0, y0, 0, -res * k))
    lst.SetProjection(srs)
    r = np.arange(mc, dtype=np.float64) * k
    c = np.arange(nc, dtype=np.float64) * k
    lst.GetRasterBand(1).WriteArray(field(r, c, 99, 270.0, 310.0))
    lst = None

    cov = drv.Create(os.path.join(a.out, "covariates.tif"), n, m, len(names), gdal.GDT_Float32, opts)
    cov.SetGeoTransform((x0, res, 0, y0, 0, -res))
    cov.SetProjection(srs)
    cols = np.arange(n, dtype=np.float64)
    for b, name in enumerate(names):
        band = cov.GetRasterBand(b + 1)
        band.SetDescription(name)
        if name == "landcover":
            band.SetMetadataItem("AMUN_KIND", "categorical")
        for r0 in range(0, m, 256):
            rows = np.arange(r0, min(m, r0 + 256), dtype=np.float64)
            if name == "landcover":
                v = np.floor(field(rows, cols, b, 1.0, 17.99)).astype(np.float32)
            else:
                v = field(rows, cols, b, *RANGES.get(name, (0.0, 1.0)))
            band.WriteArray(v, 0, r0)
        band.FlushCache()
        print(f"band {b + 1}/{len(names)} ({name}) written", flush=True)
    cov = None

    manifest = {
        "name": f"synthetic {m}x{n}",
        "month": 7,
        "hour": 13,
        "factor": k,
        "covariates": names,
        "has_reference": False,
        "amun_version": "0.1.0",
    }
    with open(os.path.join(a.out, "scene.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

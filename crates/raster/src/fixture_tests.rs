//! Tests against the GDAL-made fixtures in `fixtures/raster/` (see its README and
//! `make_fixtures.sh`; `gdalinfo.csv` holds what `gdalinfo -json -stats` reported).

use std::path::{Path, PathBuf};

use crate::{
    average, inspect, read, read_band, read_bytes, resample, statistics, write, write_raster,
    BandKind, ChunkLayout, Compression, Crs, DataType, Error, Interleave, ReadOptions, Resampling,
    Stack, WriteOptions,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/raster")
        .join(name)
}

/// One row of `gdalinfo.csv`.
struct GdalInfo {
    file: String,
    size: (usize, usize),
    bands: usize,
    gt: Option<[f64; 6]>,
    nodata: Option<f64>,
    /// min, max, mean, std of band 1 (exact statistics, rounded to 3 decimals by gdalinfo).
    stats: [f64; 4],
}

fn gdalinfo() -> Vec<GdalInfo> {
    let text = std::fs::read_to_string(fixture("gdalinfo.csv")).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |i: usize| f[i].parse::<f64>().ok();
            let gt = (0..6).map(|i| num(4 + i)).collect::<Option<Vec<f64>>>();
            GdalInfo {
                file: f[0].to_string(),
                size: (f[1].parse().unwrap(), f[2].parse().unwrap()),
                bands: f[3].parse().unwrap(),
                gt: gt.map(|g| [g[0], g[1], g[2], g[3], g[4], g[5]]),
                nodata: num(10),
                stats: [
                    num(11).unwrap(),
                    num(12).unwrap(),
                    num(13).unwrap(),
                    num(14).unwrap(),
                ],
            }
        })
        .collect()
}

const UNREADABLE: [&str; 3] = ["dem_no_georef.tif", "dem_rotated.tif", "dem_zstd.tif"];

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1.0)
}

/// NaN-aware exact equality of two stacks' data, names and grids.
fn assert_same(a: &Stack, b: &Stack, what: &str) {
    assert_eq!(a.grid(), b.grid(), "{what}: grid");
    assert_eq!(a.names(), b.names(), "{what}: names");
    for ((n, x), (_, y)) in a.iter().zip(b.iter()) {
        assert_eq!(x.kind(), y.kind(), "{what}: kind of {n}");
        for (p, q) in x.data().iter().zip(y.data().iter()) {
            assert!(
                p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()),
                "{what}: band {n}: {p} vs {q}"
            );
        }
    }
}

#[test]
fn every_layout_reads_as_gdal_reports() {
    let rows = gdalinfo();
    assert!(rows.len() >= 35, "gdalinfo.csv has {} rows", rows.len());
    for g in rows
        .iter()
        .filter(|g| !UNREADABLE.contains(&g.file.as_str()))
    {
        let stack = read(fixture(&g.file)).unwrap_or_else(|e| panic!("{}: {e}", g.file));
        let grid = stack.grid();
        assert_eq!((grid.width(), grid.height()), g.size, "{}", g.file);
        assert_eq!(stack.len(), g.bands, "{}", g.file);
        let gt = grid.transform().to_gdal();
        let want = g.gt.unwrap();
        for k in 0..6 {
            assert!(
                close(gt[k], want[k], 1e-12),
                "{}: gt {gt:?} vs {want:?}",
                g.file
            );
        }
        let band = &stack.bands()[0];
        match (band.nodata(), g.nodata) {
            (Some(a), Some(b)) => assert!(close(a, b, 0.0), "{}", g.file),
            (None, None) => {}
            (a, b) => panic!("{}: nodata {a:?} vs gdalinfo {b:?}", g.file),
        }
        let s = band.stats().unwrap();
        // gdalinfo prints 3 decimals; UInt32 values above 2^24 lose precision in f32.
        let tol = if g.file.contains("u32") { 1e-6 } else { 1e-9 };
        for (got, want) in [s.min, s.max, s.mean, s.std].into_iter().zip(g.stats) {
            assert!(
                (got - want).abs() <= 5e-4 + tol * want.abs(),
                "{}: stats {s:?} vs {:?}",
                g.file,
                g.stats
            );
        }
    }
}

#[test]
fn layouts_decode_to_identical_values() {
    // Same pixels in different layouts, types, compressions, predictors, byte orders.
    let dem = read(fixture("dem.tif")).unwrap();
    for f in [
        "dem_f32_tiled_deflate_p3.tif",
        "dem_f32_strips_lzw_p2.tif",
        "dem_f64_packbits.tif",
        "dem_bigtiff.tif",
        "dem_pixel_is_point.tif",
    ] {
        let other = read(fixture(f)).unwrap();
        assert_eq!(other.grid(), dem.grid(), "{f}");
        assert_eq!(other.bands()[0].data(), dem.bands()[0].data(), "{f}");
    }
    let l7 = read(fixture("l7.tif")).unwrap();
    for f in [
        "l7_u8_pixel_lzw.tif",
        "l7_u8_band_tiled.tif",
        "l7_u16_band_strips.tif",
    ] {
        let other = read(fixture(f)).unwrap();
        for (a, b) in other.bands().iter().zip(l7.bands()) {
            assert_eq!(a.data(), b.data(), "{f}");
        }
    }
    // read_band picks one band of a band-interleaved tiled file (image-tiff #403 layout).
    let b4 = read_band(fixture("l7_u8_band_tiled.tif"), 4).unwrap();
    assert_eq!(b4.data(), l7.bands()[3].data());
    let e = read_band(fixture("l7.tif"), 7).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BandOutOfRange {
                band: 7,
                count: 6,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn crs_band_names_and_info() {
    let dem = read(fixture("dem.tif")).unwrap();
    assert_eq!(
        dem.grid().crs(),
        Some(&Crs::Proj(
            "+proj=utm +zone=25 +south +ellps=GRS80 +units=m +no_defs".into()
        ))
    );
    let l7 = read(fixture("l7_named.tif")).unwrap();
    assert_eq!(l7.grid().crs(), Some(&Crs::Epsg(31985)));
    assert_eq!(l7.names(), ["blue", "green", "red"]);
    assert_eq!(read(fixture("l7.tif")).unwrap().names()[5], "band_6");

    let info = inspect(fixture("l7_u8_band_tiled.tif")).unwrap();
    assert_eq!((info.width, info.height, info.bands.len()), (45, 33, 6));
    assert_eq!(info.compression, Compression::Deflate);
    assert_eq!(info.interleave, Interleave::Band);
    assert_eq!(
        info.chunks,
        ChunkLayout::Tiles {
            width: 16,
            height: 16
        }
    );
    assert_eq!(info.bands[0].data_type, DataType::U8);
    let text = info.to_string();
    assert!(
        text.contains("Size is 45, 33") && text.contains("EPSG:31985"),
        "{text}"
    );
    let info = inspect(fixture("dem_bigtiff.tif")).unwrap();
    assert!(info.bigtiff);
    assert_eq!(info.nodata, Some(-9999.0));
    assert!(
        inspect(fixture("dem_pixel_is_point.tif"))
            .unwrap()
            .pixel_is_point
    );
    // inspect describes files that read refuses.
    let info = inspect(fixture("dem_rotated.tif")).unwrap();
    assert!(info.grid().is_none() && info.gdal_transform.is_some());
}

#[test]
fn errors_are_specific() {
    let e = read(fixture("dem_no_georef.tif")).unwrap_err();
    assert!(matches!(e, Error::NoGeoreference { .. }), "{e}");
    assert!(e.to_string().contains("dem_no_georef.tif"), "{e}");
    let e = read(fixture("dem_rotated.tif")).unwrap_err();
    assert!(matches!(e, Error::RotatedTransform { .. }), "{e}");
    if fixture("dem_zstd.tif").exists() {
        let e = read(fixture("dem_zstd.tif")).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Unsupported {
                    what: "compression",
                    ..
                }
            ),
            "{e}"
        );
    }
    let e = read(fixture("README.md")).unwrap_err();
    assert!(matches!(e, Error::NotTiff { .. }), "{e}");
    let e = read(fixture("missing.tif")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    // Truncated file: the pixel data runs past the end.
    let bytes = std::fs::read(fixture("dem.tif")).unwrap();
    let e = read_bytes(&bytes[..bytes.len() - 100], &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    // A sample limit stops huge allocations.
    let e = read_bytes(&bytes, &ReadOptions::default().with_max_samples(100)).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e}");
}

#[test]
fn statistics_agree_with_gdalinfo_and_exact_references() {
    // gdalinfo.csv: `gdalinfo -json -stats`, 3 decimals. The statistics are computed from the
    // samples in f64, so UInt32 values above 2^24 no longer need a looser tolerance.
    for g in gdalinfo().iter().filter(|g| g.file != "dem_zstd.tif") {
        let s = statistics(fixture(&g.file)).unwrap_or_else(|e| panic!("{}: {e}", g.file))[0]
            .unwrap_or_else(|| panic!("{}: no valid pixel", g.file));
        for (got, want) in [s.min, s.max, s.mean, s.std].into_iter().zip(g.stats) {
            assert!(
                (got - want).abs() <= 5e-4 + 1e-12 * want.abs(),
                "{}: {s:?} vs gdalinfo {:?}",
                g.file,
                g.stats
            );
        }
    }
    // hostile/stats.csv: exact statistics of the raw samples (Python's `statistics`, in
    // fractions; see hostile/make_hostile.sh): Int32 near 1e8 (f32 rounds them to multiples
    // of 8), Float64 near 1e300 (beyond f32; a naive sum of squares overflows), NaN nodata.
    let text = std::fs::read_to_string(fixture("hostile/stats.csv")).unwrap();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f[i].parse::<f64>().unwrap();
        let s = statistics(fixture(&format!("hostile/{}", f[0]))).unwrap()[0].unwrap();
        assert_eq!(s.count, f[1].parse::<usize>().unwrap(), "{line}");
        assert_eq!((s.min, s.max), (num(2), num(3)), "{line}");
        for (got, want) in [(s.mean, num(4)), (s.std, num(5))] {
            assert!((got - want).abs() <= 1e-13 * want.abs(), "{line}: {s:?}");
        }
    }
    // The f32 path would have made these values infinite: it refuses them instead.
    let e = read(fixture("hostile/f64_near_1e300.tif")).unwrap_err();
    assert!(
        matches!(e, Error::ValueOutOfRange { band: 1, .. }) && e.to_string().contains("e300"),
        "{e}"
    );
}

#[test]
fn every_fixture_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for g in gdalinfo()
        .iter()
        .filter(|g| !UNREADABLE.contains(&g.file.as_str()))
    {
        let a = read(fixture(&g.file)).unwrap();
        let out = dir.path().join(&g.file);
        write(&out, &a, &WriteOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", g.file));
        let b = read(&out).unwrap();
        assert_same(&a, &b, &g.file);
        // Every layout option writes the same values.
        for opts in [
            WriteOptions::default().with_compression(Compression::None),
            WriteOptions::default()
                .with_compression(Compression::Lzw)
                .with_tile_size(16),
            WriteOptions::default()
                .with_predictor(false)
                .with_bigtiff(true),
            WriteOptions::default().with_data_type(DataType::F64),
        ] {
            write(&out, &a, &opts).unwrap();
            assert_same(&a, &read(&out).unwrap(), &format!("{} {opts:?}", g.file));
        }
    }
}

#[test]
fn integer_output_round_trips_and_checks_range() {
    let dir = tempfile::tempdir().unwrap();
    let a = read(fixture("dem_i16_tiled_nodata.tif")).unwrap();
    let out = dir.path().join("i16.tif");
    for dt in [DataType::I16, DataType::I32, DataType::U16, DataType::U8] {
        write(&out, &a, &WriteOptions::default().with_data_type(dt)).unwrap();
        assert_same(&a, &read(&out).unwrap(), &format!("{dt}"));
        assert_eq!(inspect(&out).unwrap().bands[0].data_type, dt);
    }
    // A value outside the type's range is refused rather than clipped.
    let big = Stack::new(a.grid().clone())
        .with("x10", a.bands()[0].map(|v| v * 10.0))
        .unwrap();
    let e = write(
        &out,
        &big,
        &WriteOptions::default().with_data_type(DataType::U8),
    )
    .unwrap_err();
    assert!(matches!(e, Error::ValueOutOfRange { .. }), "{e}");
    // Missing pixels need a nodata value in an integer file.
    let nd = read(fixture("dem_nodata.tif")).unwrap();
    let band = nd.bands()[0].clone().with_nodata(None);
    let e = write_raster(
        &out,
        &band,
        &WriteOptions::default().with_data_type(DataType::U8),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NodataRequired { band: 1, .. }), "{e}");
    // Float output without a nodata value marks missing pixels with NaN.
    write_raster(&out, &band, &WriteOptions::default()).unwrap();
    let back = read_band(&out, 1).unwrap();
    assert!(back.nodata().is_some_and(f64::is_nan));
    assert_eq!(back.valid_count(), band.valid_count());
}

#[test]
fn categorical_kind_and_sinusoidal_crs_survive_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lc.tif");
    let g = crate::Grid::new(
        40,
        30,
        crate::GeoTransform::new(-3_800_000.0, -880_000.0, 463.3127, -463.3127).unwrap(),
        Some(Crs::modis_sinusoidal()),
    )
    .unwrap();
    let lc = crate::Raster::from_fn(g.clone(), |(r, c)| ((r / 7 + c / 9) % 5) as f32)
        .with_kind(BandKind::Categorical);
    let s = Stack::new(g).with("landcover", lc).unwrap();
    write(
        &out,
        &s,
        &WriteOptions::default().with_data_type(DataType::U8),
    )
    .unwrap();
    let back = read(&out).unwrap();
    assert_same(&s, &back, "landcover");
    // An independent reader (the `geotiff` crate, on `tiff` 0.9) sees the same pixels.
    let file = std::fs::File::open(&out).unwrap();
    let other = geotiff::GeoTiff::read(file).unwrap();
    assert_eq!(other.raster_width, 40);
    let v: u8 = other
        .get_value_at(
            &geo_types::Coord {
                x: -3_800_000.0 + 463.3127 * 12.5,
                y: -880_000.0 - 463.3127 * 8.5,
            },
            0,
        )
        .unwrap();
    assert_eq!(
        f32::from(v).to_bits(),
        s.bands()[0].data()[(8, 12)].to_bits()
    );
}

#[test]
fn written_files_read_back_by_the_geotiff_crate() {
    // Cross-check with an independent implementation (`geotiff` 0.1 on `tiff` 0.9): it needs
    // a single band, and reads our tiled Deflate output with predictor and geokeys.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dem.tif");
    let a = read(fixture("dem.tif")).unwrap();
    write(&out, &a, &WriteOptions::default()).unwrap();
    let g = geotiff::GeoTiff::read(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!((g.raster_width, g.raster_height), (37, 29));
    let t = a.grid().transform();
    for (r, c) in [(0usize, 0usize), (10, 20), (28, 36)] {
        let coord = geo_types::Coord {
            x: t.origin_x + (c as f64 + 0.5) * t.pixel_width,
            y: t.origin_y + (r as f64 + 0.5) * t.pixel_height,
        };
        let v: f32 = g.get_value_at(&coord, 0).unwrap();
        assert_eq!(
            v.to_bits(),
            a.bands()[0].data()[(r, c)].to_bits(),
            "({r}, {c})"
        );
    }
}

#[test]
fn gdalinfo_agrees_on_what_we_write() {
    // Runs only where GDAL is installed (the fixture machine); skipped elsewhere.
    let Ok(ver) = std::process::Command::new("gdalinfo")
        .arg("--version")
        .output()
    else {
        eprintln!("gdalinfo not found: skipped");
        return;
    };
    assert!(ver.status.success());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nd.tif");
    let a = read(fixture("dem_nodata.tif")).unwrap();
    write(&out, &a, &WriteOptions::default()).unwrap();
    let o = std::process::Command::new("gdalinfo")
        .arg("-stats")
        .arg(&out)
        .env("GDAL_PAM_ENABLED", "NO")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    // Expectations: `gdalinfo -stats dem_nodata.tif` on the GDAL-made source.
    for want in [
        "Size is 37, 29",
        "Origin = (294175.894041770196054,9117160.987334758043289)",
        "Pixel Size = (89.994067349451157,-89.994067349451157)",
        "STATISTICS_STDDEV=11.748660118388",
        "NoData Value=0",
        "STATISTICS_MEAN=18.345971563981",
        "STATISTICS_MAXIMUM=65",
        "STATISTICS_MINIMUM=1",
        "Block=256x256",
        "COMPRESSION=DEFLATE",
        "Transverse Mercator",
        "GRS 1980",
    ] {
        assert!(text.contains(want), "gdalinfo lacks `{want}`:\n{text}");
    }
}

/// NaN-aware comparison of a resampled raster with a gdalwarp reference. With
/// `inside_only`, target pixels whose footprint leaves the source are not compared.
fn compare_with_gdal(reference: &str, method: Resampling, src: &str, inside_only: bool) {
    let src = read_band(fixture(src), 1).unwrap();
    let want = read_band(fixture(reference), 1).unwrap();
    let got = resample(&src, want.grid(), method).unwrap();
    let (sx0, sy0, sx1, sy1) = src.grid().bounds();
    let inside = |(r, c): (usize, usize)| {
        let (x0, y1) = want.grid().pixel_to_world(c as f64, r as f64);
        let (x1, y0) = want.grid().pixel_to_world(c as f64 + 1.0, r as f64 + 1.0);
        x0 >= sx0 && x1 <= sx1 && y0 >= sy0 && y1 <= sy1
    };
    let (mut worst, mut at) = (0.0f32, (0, 0));
    for ((idx, a), b) in got.data().indexed_iter().zip(want.data().iter()) {
        if inside_only && !inside(idx) {
            continue;
        }
        assert_eq!(
            a.is_nan(),
            b.is_nan(),
            "{reference}: {idx:?}: amun {a} vs gdal {b}"
        );
        if !a.is_nan() && (a - b).abs() > worst {
            (worst, at) = ((a - b).abs(), idx);
        }
    }
    assert!(
        worst <= 1e-4,
        "{reference}: max |amun - gdal| = {worst} at {at:?}: amun {} gdal {}",
        got.data()[at],
        want.data()[at]
    );
}

#[test]
fn resampling_agrees_with_gdalwarp() {
    // References: gdalwarp -r <method> on dem_nodata.tif (mode: on dem_u8_nodata.tif),
    // commands in make_fixtures.sh.
    for case in ["up3", "down3", "shift"] {
        for (name, m) in [
            ("near", Resampling::Nearest),
            ("bilinear", Resampling::Bilinear),
            ("cubic", Resampling::Bicubic),
            ("average", Resampling::Average),
            ("mode", Resampling::Mode),
        ] {
            let src = if name == "mode" {
                "dem_u8_nodata.tif"
            } else {
                "dem_nodata.tif"
            };
            // GDAL's average gives the edge pixel the weight of the part of a target pixel
            // that hangs over the source edge; amun weights by the overlap only (documented
            // in `average`), so such pixels are left out of that comparison.
            let inside_only = m == Resampling::Average;
            compare_with_gdal(&format!("ref_{case}_{name}.tif"), m, src, inside_only);
        }
    }
}

#[test]
fn average_coverage_on_a_real_coastline() {
    let src = read_band(fixture("dem_nodata.tif"), 1).unwrap();
    let coarse = src.grid().window(0, 0, 36, 27).unwrap().coarsen(3).unwrap();
    let a = average(&src, &coarse).unwrap();
    // Coverage = valid fine pixels / 9 in each 3x3 block (sea is nodata).
    for r in 0..9 {
        for c in 0..12 {
            let valid = (0..9)
                .filter(|k| !src.data()[(3 * r + k / 3, 3 * c + k % 3)].is_nan())
                .count();
            let cov = a.coverage.data()[(r, c)];
            assert!(
                (cov - valid as f32 / 9.0).abs() < 1e-6,
                "({r},{c}) {cov} vs {valid}/9"
            );
        }
    }
}

//! `amun info`: what a GeoTIFF holds, like `gdalinfo -stats`, with statistics computed in
//! f64 from the samples on disk.

use std::io::Write;
use std::path::PathBuf;

use amun_core::raster::{inspect, statistics};
use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::{check_file, Ctx};

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The GeoTIFF.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct InfoBand {
    band: usize,
    name: Option<String>,
    data_type: String,
    kind: String,
    #[serde(serialize_with = "gdal_json_number")]
    nodata: Option<f64>,
    valid_pixels: usize,
    #[serde(serialize_with = "gdal_json_number")]
    min: Option<f64>,
    #[serde(serialize_with = "gdal_json_number")]
    max: Option<f64>,
    #[serde(serialize_with = "gdal_json_number")]
    mean: Option<f64>,
    #[serde(serialize_with = "gdal_json_number")]
    std_dev: Option<f64>,
}

/// A number as `gdalinfo -json` writes it: JSON has no NaN or infinity, so those are the
/// strings `"NaN"`, `"Infinity"` and `"-Infinity"` (a NaN nodata is not "no nodata").
fn gdal_json_number<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(x) if x.is_nan() => s.serialize_str("NaN"),
        Some(x) if x.is_infinite() => {
            s.serialize_str(if *x > 0.0 { "Infinity" } else { "-Infinity" })
        }
        Some(x) => s.serialize_f64(*x),
    }
}

#[derive(Serialize)]
struct InfoOut {
    file: PathBuf,
    width: usize,
    height: usize,
    crs: Option<String>,
    crs_note: Option<String>,
    geotransform: Option<[f64; 6]>,
    bounds: Option<[f64; 4]>,
    compression: String,
    layout: String,
    interleave: String,
    bigtiff: bool,
    bands: Vec<InfoBand>,
}

/// Runs `amun info`.
pub fn run(_ctx: &Ctx, a: &InfoArgs) -> Result<()> {
    check_file(&a.file)?;
    let fi = inspect(&a.file)?;
    // From the samples on disk in f64 (reading converts to f32, which rounds large integers).
    let stats = statistics(&a.file)?;
    let bands: Vec<InfoBand> = fi
        .bands
        .iter()
        .zip(stats)
        .map(|(b, s)| InfoBand {
            band: b.index,
            name: b.description.clone(),
            data_type: format!("{:?}", b.data_type),
            kind: format!("{:?}", b.kind),
            nodata: fi.nodata,
            valid_pixels: s.map_or(0, |s| s.count),
            min: s.map(|s| s.min),
            max: s.map(|s| s.max),
            mean: s.map(|s| s.mean),
            std_dev: s.map(|s| s.std),
        })
        .collect();
    let out = InfoOut {
        file: a.file.clone(),
        width: fi.width,
        height: fi.height,
        crs: fi.crs.as_ref().map(|c| c.to_string()),
        crs_note: fi.crs_note.clone(),
        geotransform: fi.gdal_transform,
        bounds: fi.grid().map(|g| {
            let (a, b, c, d) = g.bounds();
            [a, b, c, d]
        }),
        compression: format!("{:?}", fi.compression),
        layout: format!("{:?}", fi.chunks),
        interleave: format!("{:?}", fi.interleave),
        bigtiff: fi.bigtiff,
        bands,
    };
    // Written with `?`, so that a closed pipe ends the program quietly (see `main`).
    let mut w = std::io::stdout().lock();
    if a.json {
        writeln!(w, "{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }
    writeln!(w, "File: {}", out.file.display())?;
    writeln!(w, "Size is {}, {}", out.width, out.height)?;
    writeln!(
        w,
        "Coordinate system: {}",
        out.crs.as_deref().unwrap_or("none")
    )?;
    if let Some(n) = &out.crs_note {
        writeln!(w, "  note: {n}")?;
    }
    if let Some(gt) = out.geotransform {
        writeln!(w, "Origin = ({:.15}, {:.15})", gt[0], gt[3])?;
        writeln!(w, "Pixel Size = ({:.15}, {:.15})", gt[1], gt[5])?;
        if gt[2] != 0.0 || gt[4] != 0.0 {
            writeln!(
                w,
                "Rotation = ({}, {}) (amun reads north-up grids only)",
                gt[2], gt[4]
            )?;
        }
    } else {
        writeln!(w, "No georeferencing")?;
    }
    if let Some(b) = out.bounds {
        writeln!(
            w,
            "Bounds: xmin {} ymin {} xmax {} ymax {}",
            b[0], b[1], b[2], b[3]
        )?;
    }
    writeln!(
        w,
        "Layout: {} {} {}{}",
        out.compression,
        out.layout,
        out.interleave,
        if out.bigtiff { " BigTIFF" } else { "" }
    )?;
    for b in &out.bands {
        writeln!(
            w,
            "Band {} {}Type={} ({})",
            b.band,
            b.name
                .as_deref()
                .map_or(String::new(), |n| format!("\"{n}\" ")),
            b.data_type,
            b.kind
        )?;
        if let Some(nd) = b.nodata {
            // As gdalinfo prints it.
            let nd = if nd.is_nan() {
                "nan".into()
            } else {
                nd.to_string()
            };
            writeln!(w, "  NoData Value={nd}")?;
        }
        match (b.min, b.max, b.mean, b.std_dev) {
            (Some(mn), Some(mx), Some(me), Some(sd)) => writeln!(
                w,
                "  Minimum={mn:.3}, Maximum={mx:.3}, Mean={me:.3}, StdDev={sd:.3} ({} valid pixels)",
                b.valid_pixels
            )?,
            _ => writeln!(w, "  every pixel is nodata")?,
        }
    }
    Ok(())
}

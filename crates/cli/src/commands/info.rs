//! `amun info`: what a GeoTIFF holds, like `gdalinfo -stats`.

use std::path::PathBuf;

use amun_core::raster::{inspect, read};
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
    nodata: Option<f64>,
    valid_pixels: usize,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    std_dev: Option<f64>,
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
    let stack = read(&a.file)?;
    let bands: Vec<InfoBand> = fi
        .bands
        .iter()
        .zip(stack.bands())
        .map(|(b, r)| {
            let s = r.stats();
            InfoBand {
                band: b.index,
                name: b.description.clone(),
                data_type: format!("{:?}", b.data_type),
                kind: format!("{:?}", r.kind()),
                nodata: fi.nodata,
                valid_pixels: r.valid_count(),
                min: s.map(|s| s.min),
                max: s.map(|s| s.max),
                mean: s.map(|s| s.mean),
                std_dev: s.map(|s| s.std),
            }
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
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("File: {}", out.file.display());
    println!("Size is {}, {}", out.width, out.height);
    println!(
        "Coordinate system: {}",
        out.crs.as_deref().unwrap_or("none")
    );
    if let Some(n) = &out.crs_note {
        println!("  note: {n}");
    }
    if let Some(gt) = out.geotransform {
        println!("Origin = ({:.15}, {:.15})", gt[0], gt[3]);
        println!("Pixel Size = ({:.15}, {:.15})", gt[1], gt[5]);
    } else {
        println!("No georeferencing");
    }
    if let Some(b) = out.bounds {
        println!(
            "Bounds: xmin {} ymin {} xmax {} ymax {}",
            b[0], b[1], b[2], b[3]
        );
    }
    println!(
        "Layout: {} {} {}{}",
        out.compression,
        out.layout,
        out.interleave,
        if out.bigtiff { " BigTIFF" } else { "" }
    );
    for b in &out.bands {
        println!(
            "Band {} {}Type={} ({})",
            b.band,
            b.name
                .as_deref()
                .map_or(String::new(), |n| format!("\"{n}\" ")),
            b.data_type,
            b.kind
        );
        if let Some(nd) = b.nodata {
            println!("  NoData Value={nd}");
        }
        match (b.min, b.max, b.mean, b.std_dev) {
            (Some(mn), Some(mx), Some(me), Some(sd)) => println!(
                "  Minimum={mn:.3}, Maximum={mx:.3}, Mean={me:.3}, StdDev={sd:.3} ({} valid pixels)",
                b.valid_pixels
            ),
            _ => println!("  every pixel is nodata"),
        }
    }
    Ok(())
}

//! Prints what amun-raster sees in GeoTIFF files: `cargo run -p amun-raster --example gtinfo -- FILE...`

/// Prints what amun-raster sees in GeoTIFF files.
#[derive(clap::Parser)]
struct Args {
    /// GeoTIFF files.
    files: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    for path in <Args as clap::Parser>::parse().files {
        match amun_raster::inspect(&path) {
            Ok(info) => print!("{info}"),
            Err(e) => println!("{path}: inspect error: {e}"),
        }
        match amun_raster::read(&path) {
            Ok(stack) => {
                for (name, band) in stack.iter() {
                    println!("  {name}: {:?}", band.stats());
                }
            }
            Err(e) => println!("{path}: read error: {e}"),
        }
        println!();
    }
    Ok(())
}

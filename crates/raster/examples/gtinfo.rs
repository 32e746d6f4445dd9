//! Prints what amun-raster sees in GeoTIFF files: `cargo run -p amun-raster --example gtinfo -- FILE...`

fn main() -> anyhow::Result<()> {
    for path in std::env::args().skip(1) {
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

//! Fuzz target: the GeoTIFF reader must never panic, whatever the bytes.
//!
//! libfuzzer-sys installs a panic hook that aborts, so a panic counts as a crash even
//! though `read_bytes` would turn it into an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut opts = amun_raster::ReadOptions::default().with_max_samples(1 << 22);
    opts.max_tag_bytes = 1 << 20;
    if let Ok(stack) = amun_raster::read_bytes(data, &opts) {
        // Touch the result so that nothing is optimised away.
        assert_eq!(stack.grid().len(), stack.grid().width() * stack.grid().height());
    }
});

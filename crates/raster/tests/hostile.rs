//! Hostile GeoTIFFs (`fixtures/raster/hostile/`, made by `make_hostile.sh` there): each is read
//! through every public entry point in a child process limited to 1 GiB of address space,
//! which must exit normally, print nothing on stderr, and report the error named here.
//!
//! The files reproduce what issue 19 found: a header claiming 32000×32000 pixels that made
//! the reader allocate 4 GB, a corrupt `GDAL_NODATA` count that made the `tiff` crate print a
//! `dbg!` line, truncated files and garbage reported as "failed to fill whole buffer" or
//! "Invalid argument (os error 22)", a directory reported as a 9.2 EB file, a rotated
//! transform reported without the file's name, and WebP tiles reported as damaged.

mod support;

use std::path::{Path, PathBuf};

use support::{limit_address_space, read_every_way, run_cases, run_child, ADDRESS_SPACE_LIMIT};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/raster")
        .join(name)
}

/// What each entry point returned: `(name, Ok(()) or Err(message))`.
type Outcomes = Vec<(String, Result<(), String>)>;

/// Reads `path` every way in a limited child; an abnormal end or any stderr output is an
/// error.
fn read_in_child(path: &Path) -> Result<Outcomes, String> {
    let run = run_child(&format!("read:{}", path.display()));
    if let Some(why) = run.failure() {
        return Err(format!("{}: child ended abnormally: {why}", path.display()));
    }
    if !run.stderr.is_empty() {
        return Err(format!(
            "{}: the reader wrote to stderr: {}",
            path.display(),
            run.stderr.trim()
        ));
    }
    Ok(run
        .stdout
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let name = f.next().unwrap_or("").to_string();
            match (f.next(), f.next()) {
                (Some("ok"), _) => (name, Ok(())),
                (_, msg) => (name, Err(msg.unwrap_or("").to_string())),
            }
        })
        .collect())
}

/// Checks that the entry points in `failing` return an error containing every needle and
/// that the others succeed.
fn expect(file: &str, failing: &[&str], needles: &[&str]) -> Result<(), String> {
    let path = fixture(file);
    let outcomes = read_in_child(&path)?;
    if outcomes.len() != 4 {
        return Err(format!("{file}: expected 4 outcomes, got {outcomes:?}"));
    }
    for (name, outcome) in outcomes {
        match (failing.contains(&name.as_str()), outcome) {
            (true, Ok(())) => return Err(format!("{file}: {name} succeeded, expected an error")),
            (false, Err(e)) => return Err(format!("{file}: {name} failed: {e}")),
            (true, Err(e)) => {
                for n in needles {
                    if !e.contains(n) {
                        return Err(format!("{file}: {name}: `{n}` not in: {e}"));
                    }
                }
                for vague in ["failed to fill whole buffer", "os error 22"] {
                    if e.contains(vague) {
                        return Err(format!("{file}: {name}: vague message: {e}"));
                    }
                }
            }
            (false, Ok(())) => {}
        }
    }
    Ok(())
}

const ALL: &[&str] = &["inspect", "read", "read_band", "statistics"];
const PIXELS: &[&str] = &["read", "read_band", "statistics"];

fn main() {
    if let Ok(spec) = std::env::var(support::CHILD_ENV) {
        let path = spec.strip_prefix("read:").expect("a read: child spec");
        limit_address_space(ADDRESS_SPACE_LIMIT);
        for line in read_every_way(Path::new(path)) {
            println!("{line}");
        }
        return;
    }
    run_cases(&[
        // Issue 19, defect 1: 18 KB claiming 32000 × 32000 Int16 pixels in one strip.
        ("huge_claim_is_refused_before_allocating", || {
            expect(
                "hostile/huge_claim_i16_nodata.tif",
                PIXELS,
                &["strip 0", "cannot hold"],
            )
        }),
        // The `tiff` crate's `dbg!(TiffError::LimitsExceeded)` (tiff 0.11.3, ifd.rs:723).
        ("corrupt_nodata_count_is_named_and_silent", || {
            expect(
                "hostile/nodata_count_corrupt.tif",
                ALL,
                &["GDAL_NODATA", "2147483647"],
            )
        }),
        ("truncated_directory_is_named", || {
            expect("hostile/truncated_ifd.tif", ALL, &["IFD"])
        }),
        ("directory_past_the_end_is_named", || {
            expect("hostile/ifd_past_end.tif", ALL, &["IFD", "past the end"])
        }),
        ("garbage_after_a_header_is_named", || {
            expect("hostile/garbage_after_header.tif", ALL, &["IFD"])
        }),
        ("truncated_strip_is_named", || {
            expect("hostile/truncated_strip.tif", PIXELS, &["strip 0"])
        }),
        ("webp_is_unsupported_not_corrupt", || {
            expect(
                "hostile/webp.tif",
                PIXELS,
                &["unsupported compression", "WEBP"],
            )
        }),
        ("a_directory_is_not_a_file", || {
            expect("hostile", ALL, &["is a directory"])
        }),
        ("rotated_transform_names_the_file", || {
            expect(
                "dem_rotated.tif",
                &["read", "read_band"],
                &["dem_rotated.tif", "rotated"],
            )
        }),
    ]);
}

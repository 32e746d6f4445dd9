//! What the hostile-file and mutation tests share: reading a file through every public entry
//! point in a child process whose address space is capped, and a small test runner (these
//! test binaries have `harness = false`, so that the same binary can act as the child).

#![allow(dead_code)] // each test binary uses part of this module

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The environment variable that turns a test binary into a child that reads files.
pub const CHILD_ENV: &str = "AMUN_RASTER_TEST_CHILD";

/// The address-space limit of a child: 1 GiB, where a reader that allocated what a hostile
/// header claims (4 GB for issue 19's file) aborts instead of returning an error.
pub const ADDRESS_SPACE_LIMIT: u64 = 1 << 30;

/// Caps this process's address space (`RLIMIT_AS`, soft and hard).
pub fn limit_address_space(bytes: u64) {
    use nix::sys::resource::{setrlimit, Resource};
    setrlimit(Resource::RLIMIT_AS, bytes, bytes).expect("setrlimit(RLIMIT_AS)");
}

/// The public entry points amun uses to read a GeoTIFF, each on `path`; one line per entry
/// point: `name<TAB>ok` or `name<TAB>err<TAB>message`.
pub fn read_every_way(path: &Path) -> Vec<String> {
    fn line<T>(name: &str, r: amun_raster::Result<T>) -> String {
        match r {
            Ok(_) => format!("{name}\tok"),
            Err(e) => format!("{name}\terr\t{}", e.to_string().replace(['\n', '\t'], " ")),
        }
    }
    vec![
        line("inspect", amun_raster::inspect(path)),
        line("read", amun_raster::read(path)),
        line("read_band", amun_raster::read_band(path, 1)),
        line("statistics", amun_raster::statistics(path)),
    ]
}

/// What a child reported.
pub struct ChildRun {
    /// Exit code, or `None` if a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ChildRun {
    /// A one-line description of an abnormal end, or `None` for exit code 0.
    pub fn failure(&self) -> Option<String> {
        match (self.code, self.signal) {
            (Some(0), _) => None,
            (_, Some(s)) => Some(format!(
                "killed by signal {s} ({}); stderr: {}",
                signal_name(s),
                self.stderr.trim()
            )),
            (c, None) => Some(format!("exit code {c:?}; stderr: {}", self.stderr.trim())),
        }
    }
}

pub fn signal_name(s: i32) -> &'static str {
    match s {
        6 => "SIGABRT: a panic in a panic-abort build or a failed allocation",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        _ => "other",
    }
}

/// Runs this test binary again as a child with `CHILD_ENV=spec` and waits for it.
pub fn run_child(spec: &str) -> ChildRun {
    use std::os::unix::process::ExitStatusExt;
    let out = Command::new(std::env::current_exe().expect("the test binary's path"))
        .env(CHILD_ENV, spec)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("the child runs");
    ChildRun {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A named test case.
pub type Case<'a> = (&'a str, fn() -> Result<(), String>);

/// A minimal test runner: runs the cases whose name contains every non-flag argument, prints
/// one line per case and the closing `N passed, N failed` line, and exits non-zero on a failure.
pub fn run_cases(cases: &[Case]) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if !filters.iter().all(|f| name.contains(f.as_str())) {
            continue;
        }
        match case() {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED\n    {why}");
            }
        }
        let _ = std::io::stdout().flush();
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

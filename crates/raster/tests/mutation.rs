//! A mutation campaign on stable Rust: every GeoTIFF under `fixtures/` is mutated many times
//! (bit flips, byte runs, truncations, edits of a directory entry's count, value or type,
//! boundary integers written anywhere) and each mutant is read through every public entry
//! point (`inspect`, `read`, `read_band`, `statistics`) in a child process limited to 1 GiB
//! of address space. Each read must return `Ok` or `Err`: a panic, an abort (a failed
//! allocation included), a signal, a stall or a line on stderr fails the test, naming the
//! mutant and writing it to `target/mutation-failures/` for reproduction.
//!
//! Children read batches of mutants and announce each before reading it, so a crash is
//! pinned on its mutant; a new child takes over from the next one.
//!
//! Settings (environment):
//! - `AMUN_MUTANTS`: mutants per fixture (default 100: a quick run inside `cargo test`;
//!   `.ci/run` sets more, `docs/reliability.md` records the long runs);
//! - `AMUN_MUTATION_SEED` (default 19), `AMUN_MUTATION_WORKERS` (default: the cores),
//!   `AMUN_MUTATION_STALL_S` (seconds one read may take, default 60).

mod support;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use support::{limit_address_space, read_every_way, run_cases, signal_name, ADDRESS_SPACE_LIMIT};

/// Mutants read by one child before a fresh one takes over.
const BATCH: u64 = 400;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every `.tif` under `fixtures/`, sorted.
fn fixtures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "tif") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut out = Vec::new();
    walk(&root, &mut out);
    out.sort();
    out
}

// ---- mutations ---------------------------------------------------------------------------

/// FNV-1a of a name: a stable per-fixture seed component.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Where the entries of a TIFF's first directory are.
struct Ifd {
    little: bool,
    big: bool,
    /// Byte position of each entry.
    entries: Vec<usize>,
}

fn parse_ifd(d: &[u8]) -> Option<Ifd> {
    let little = match d.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u = |pos: usize, n: usize| -> Option<u64> {
        let b = d.get(pos..pos + n)?;
        Some(if little {
            b.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x))
        } else {
            b.iter().fold(0u64, |a, &x| a << 8 | u64::from(x))
        })
    };
    let big = u(2, 2)? == 43;
    let (ifd, count_len, entry_len) = if big {
        (u(8, 8)?, 8, 20)
    } else {
        (u(4, 4)?, 2, 12)
    };
    let ifd = usize::try_from(ifd).ok()?;
    let n = usize::try_from(u(ifd, count_len)?).ok()?.min(4096);
    let entries: Vec<usize> = (0..n)
        .map(|i| ifd + count_len + i * entry_len)
        .take_while(|&p| p + entry_len <= d.len())
        .collect();
    (!entries.is_empty()).then_some(Ifd {
        little,
        big,
        entries,
    })
}

fn put(d: &mut [u8], pos: usize, value: u64, len: usize, little: bool) {
    for k in 0..len {
        let shift = 8 * if little { k } else { len - 1 - k };
        if let Some(b) = d.get_mut(pos + k) {
            *b = (value >> shift) as u8;
        }
    }
}

const INTERESTING: [u64; 16] = [
    0,
    1,
    2,
    3,
    7,
    16,
    255,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    u64::MAX,
];

/// Applies one random mutation; returns its description.
fn mutate_once(d: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    let len = d.len();
    if len == 0 {
        d.push(rng.random());
        return "insert a byte into an empty file".into();
    }
    let ifd = parse_ifd(d);
    let op = rng.random_range(0..8);
    match (op, &ifd) {
        (0, _) => {
            let n = rng.random_range(1..=8);
            for _ in 0..n {
                let bit = rng.random_range(0..len * 8);
                d[bit / 8] ^= 1 << (bit % 8);
            }
            format!("flip {n} bits")
        }
        (1, _) => {
            let pos = rng.random_range(0..len);
            let run = rng.random_range(1..=64).min(len - pos);
            let kind = rng.random_range(0..3);
            for b in &mut d[pos..pos + run] {
                *b = match kind {
                    0 => rng.random(),
                    1 => 0,
                    _ => 0xff,
                };
            }
            format!(
                "overwrite {run} bytes at {pos} ({})",
                ["random", "0x00", "0xff"][kind]
            )
        }
        (2, _) => {
            let keep = rng.random_range(0..len);
            d.truncate(keep);
            format!("truncate to {keep} bytes")
        }
        (3, Some(ifd)) => {
            let e = ifd.entries[rng.random_range(0..ifd.entries.len())];
            let (pos, n) = if ifd.big { (e + 4, 8) } else { (e + 4, 4) };
            let old = {
                let mut v = 0u64;
                for k in 0..n {
                    let b = u64::from(*d.get(pos + k).unwrap_or(&0));
                    v |= b << (8 * if ifd.little { k } else { n - 1 - k });
                }
                v
            };
            let new = match rng.random_range(0..4) {
                0 => INTERESTING[rng.random_range(0..INTERESTING.len())],
                1 => old.wrapping_add(1),
                2 => old.wrapping_sub(1),
                _ => old.wrapping_mul(1 << rng.random_range(1..20)),
            };
            put(d, pos, new, n, ifd.little);
            format!("entry at {e}: count {old} -> {new}")
        }
        (4, Some(ifd)) => {
            let e = ifd.entries[rng.random_range(0..ifd.entries.len())];
            let (pos, n) = if ifd.big { (e + 12, 8) } else { (e + 8, 4) };
            let new = if rng.random_bool(0.5) {
                INTERESTING[rng.random_range(0..INTERESTING.len())]
            } else {
                // Offsets near the end of the file, and small dimensions.
                let near = [len as u64 - 1, len as u64, len as u64 + 1, 37, 29, 32000];
                near[rng.random_range(0..near.len())]
            };
            put(d, pos, new, n, ifd.little);
            format!("entry at {e}: value field -> {new}")
        }
        (5, Some(ifd)) => {
            let e = ifd.entries[rng.random_range(0..ifd.entries.len())];
            let t = rng.random_range(0..=20);
            put(d, e + 2, t, 2, ifd.little);
            format!("entry at {e}: type -> {t}")
        }
        (6, _) => {
            let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
            let n = [2, 4, 8][rng.random_range(0..3)];
            let pos = rng.random_range(0..len);
            let little = rng.random_bool(0.5);
            put(d, pos, v, n, little);
            format!("write {v:#x} as {n} bytes at {pos}")
        }
        _ => {
            // Copy a piece of the file over another place (a duplicated structure).
            let from = rng.random_range(0..len);
            let to = rng.random_range(0..len);
            let n = rng.random_range(1..=256).min(len - from).min(len - to);
            let piece = d[from..from + n].to_vec();
            d[to..to + n].copy_from_slice(&piece);
            format!("copy {n} bytes from {from} to {to}")
        }
    }
}

/// Mutant `index` of a fixture: 1–3 mutations of its bytes, and what they were.
fn mutant(bytes: &[u8], name: &str, seed: u64, index: u64) -> (Vec<u8>, String) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv(name) ^ index.wrapping_mul(0x9e37_79b9));
    let mut d = bytes.to_vec();
    let n = rng.random_range(1..=3);
    let what: Vec<String> = (0..n).map(|_| mutate_once(&mut d, &mut rng)).collect();
    (d, what.join("; "))
}

// ---- the child ------------------------------------------------------------------------------

/// Reads mutants `start..end` of one fixture, announcing each (`B i`) before reading it and
/// reporting it (`E i` and one character per entry point, `o` for Ok, `e` for Err) after.
fn child(spec: &str) {
    let mut f = spec.splitn(5, ':').skip(1);
    let (seed, start, end) = (
        f.next().and_then(|s| s.parse().ok()).expect("seed"),
        f.next().and_then(|s| s.parse::<u64>().ok()).expect("start"),
        f.next().and_then(|s| s.parse::<u64>().ok()).expect("end"),
    );
    let fixture = PathBuf::from(f.next().expect("fixture path"));
    let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
    let bytes = std::fs::read(&fixture).expect("fixture readable");
    let tmp = std::env::temp_dir().join(format!("amun-mutant-{}.tif", std::process::id()));
    limit_address_space(ADDRESS_SPACE_LIMIT);
    let mut out = std::io::stdout().lock();
    for i in start..end {
        let (m, _) = mutant(&bytes, &name, seed, i);
        std::fs::write(&tmp, &m).expect("temporary file written");
        writeln!(out, "B {i}").unwrap();
        out.flush().unwrap();
        let res: String = read_every_way(&tmp)
            .iter()
            .map(|l| {
                if l.split('\t').nth(1) == Some("ok") {
                    'o'
                } else {
                    'e'
                }
            })
            .collect();
        writeln!(out, "E {i} {res}").unwrap();
    }
    out.flush().unwrap();
    let _ = std::fs::remove_file(&tmp);
}

// ---- the parent ------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    mutants: u64,
    /// Per entry point: (ok, err).
    outcomes: [(u64, u64); 4],
    failures: Vec<String>,
}

/// One batch: fixture, first and one-past-last mutant.
type Job = (PathBuf, u64, u64);

fn spawn(job: &Job, seed: u64) -> Child {
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .env(
            support::CHILD_ENV,
            format!("mutate:{seed}:{}:{}:{}", job.1, job.2, job.0.display()),
        )
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child starts")
}

/// Saves a failing mutant for reproduction and describes it.
fn record(job: &Job, seed: u64, index: u64, why: &str) -> String {
    let name = job.0.file_name().unwrap().to_string_lossy().into_owned();
    let bytes = std::fs::read(&job.0).unwrap_or_default();
    let (m, what) = mutant(&bytes, &name, seed, index);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/mutation-failures");
    let saved = dir.join(format!("{name}-seed{seed}-{index}.tif"));
    let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&saved, m));
    format!(
        "{name} mutant {index} ({what}): {why}; saved as {}",
        saved.display()
    )
}

/// Runs one batch, restarting after a crash; adds to the tally.
fn run_job(job: &Job, seed: u64, stall: Duration, tally: &Mutex<Tally>) {
    let mut next = job.1;
    while next < job.2 {
        let part = (job.0.clone(), next, job.2);
        let mut child = spawn(&part, seed);
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut started: Option<u64> = None;
        let mut local = Tally::default();
        let mut stalled = false;
        loop {
            match rx.recv_timeout(stall) {
                Ok(line) => {
                    let mut f = line.split(' ');
                    match (
                        f.next(),
                        f.next().and_then(|i| i.parse::<u64>().ok()),
                        f.next(),
                    ) {
                        (Some("B"), Some(i), _) => started = Some(i),
                        (Some("E"), Some(i), Some(res)) => {
                            started = None;
                            next = i + 1;
                            local.mutants += 1;
                            for (k, c) in res.chars().enumerate().take(4) {
                                if c == 'o' {
                                    local.outcomes[k].0 += 1;
                                } else {
                                    local.outcomes[k].1 += 1;
                                }
                            }
                        }
                        _ => local
                            .failures
                            .push(format!("unexpected child line: {line}")),
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    stalled = true;
                    let _ = child.kill();
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait().expect("the child is waited for");
        let _ = reader.join();
        let err = err_reader.join().unwrap_or_default();
        let err_tail: String = err.trim().chars().take(400).collect();
        if stalled {
            let i = started.unwrap_or(next);
            local.failures.push(record(
                &part,
                seed,
                i,
                &format!("no answer in {} s", stall.as_secs()),
            ));
            next = i + 1;
        } else if let Some(i) = started {
            use std::os::unix::process::ExitStatusExt;
            let why = match status.signal() {
                Some(s) => format!("killed by signal {s} ({}): {err_tail}", signal_name(s)),
                None => format!("exit code {:?}: {err_tail}", status.code()),
            };
            local.failures.push(record(&part, seed, i, &why));
            next = i + 1;
        } else if !status.success() {
            local.failures.push(format!(
                "{} batch from {}: child failed outside a read: {status}: {err_tail}",
                part.0.display(),
                part.1
            ));
            next = job.2;
        } else if !err.is_empty() {
            local.failures.push(format!(
                "{} mutants {}..{}: the reader wrote to stderr: {err_tail}",
                part.0.display(),
                part.1,
                next
            ));
        }
        let mut t = tally.lock().unwrap();
        t.mutants += local.mutants;
        for k in 0..4 {
            t.outcomes[k].0 += local.outcomes[k].0;
            t.outcomes[k].1 += local.outcomes[k].1;
        }
        t.failures.append(&mut local.failures);
    }
}

fn campaign() -> Result<(), String> {
    let per_fixture = env_u64("AMUN_MUTANTS", 100);
    let seed = env_u64("AMUN_MUTATION_SEED", 19);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    let workers = env_u64("AMUN_MUTATION_WORKERS", cores).max(1);
    let stall = Duration::from_secs(env_u64("AMUN_MUTATION_STALL_S", 60));
    let files = fixtures();
    if files.len() < 50 {
        return Err(format!("only {} fixtures found", files.len()));
    }
    let jobs: VecDeque<Job> = files
        .iter()
        .flat_map(|f| {
            (0..per_fixture)
                .step_by(BATCH as usize)
                .map(move |s| (f.clone(), s, (s + BATCH).min(per_fixture)))
        })
        .collect();
    let total = files.len() as u64 * per_fixture;
    eprintln!(
        "mutation: {} fixtures × {per_fixture} mutants = {total} mutants, seed {seed}, {workers} workers",
        files.len()
    );
    let queue = Mutex::new(jobs);
    let tally = Mutex::new(Tally::default());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(job) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                run_job(&job, seed, stall, &tally);
                let done = tally.lock().unwrap().mutants;
                let el = t0.elapsed().as_secs_f64();
                if job.2 == per_fixture || done == total {
                    eprintln!(
                        "mutation: {done}/{total} mutants, {el:.0} s, eta {:.0} s",
                        el / done.max(1) as f64 * (total - done) as f64
                    );
                }
            });
        }
    });
    let t = tally.into_inner().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let names = ["inspect", "read", "read_band", "statistics"];
    let per_api: Vec<String> = names
        .iter()
        .zip(t.outcomes)
        .map(|(n, (ok, err))| format!("{n} {ok} Ok / {err} Err"))
        .collect();
    println!(
        "mutation: {} mutants of {} fixtures (seed {seed}) read 4 ways in {secs:.1} s ({:.0} mutants/s): {}; {} failures",
        t.mutants,
        files.len(),
        t.mutants as f64 / secs,
        per_api.join(", "),
        t.failures.len()
    );
    if t.mutants != total && t.failures.is_empty() {
        return Err(format!("{} of {total} mutants were read", t.mutants));
    }
    if t.failures.is_empty() {
        Ok(())
    } else {
        Err(t.failures.join("\n    "))
    }
}

fn main() {
    if let Ok(spec) = std::env::var(support::CHILD_ENV) {
        child(&spec);
        return;
    }
    run_cases(&[
        ("mutants_of_every_fixture_read_or_fail_cleanly", campaign),
        ("mutations_are_reproducible", || {
            let bytes = std::fs::read(&fixtures()[0]).map_err(|e| e.to_string())?;
            let a = mutant(&bytes, "x", 1, 7);
            let b = mutant(&bytes, "x", 1, 7);
            let c = mutant(&bytes, "x", 1, 8);
            if a != b || a == c {
                return Err("mutants are not a function of (seed, fixture, index)".into());
            }
            Ok(())
        }),
    ]);
}

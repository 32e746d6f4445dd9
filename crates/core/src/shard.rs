//! One task's share of a job split across many processes: `I/N` by hand, or the task of a
//! Slurm job array.

use std::fmt;
use std::ops::Range;

use crate::error::{Error, Result};

/// Task `index` of `count` (0-based): which share of a list of items (time steps, scenes) or
/// of the rows of one scene this process handles.
///
/// # How work is shared
/// Shares are **contiguous and balanced**: of `n` items, task `i` takes items
/// `⌊i·n/N⌋ .. ⌊(i+1)·n/N⌋`, so shares differ in size by at most one and together cover
/// every item exactly once. Contiguous rather than round-robin because
/// - the same rule serves the rows of one scene, where a task's band must be contiguous;
/// - the steps of a series share one grid and cost the same, so round-robin would balance
///   nothing more, while a contiguous share is a date range that a user can read off a failed
///   task ("task 3 had 2020-07-01 … 2020-09-30") and rerun by hand;
/// - it depends only on `n`, `i` and `N`, never on what other tasks did or the order they
///   ran in, so a rerun of task `i` redoes exactly the same items.
///
/// When there are fewer items than tasks, some tasks get an empty share (nothing to do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: usize,
    count: usize,
}

/// The Slurm array variables [`Shard::from_slurm`] reads.
const TASK_ID: &str = "SLURM_ARRAY_TASK_ID";
const TASK_MIN: &str = "SLURM_ARRAY_TASK_MIN";
const TASK_MAX: &str = "SLURM_ARRAY_TASK_MAX";
const TASK_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
const TASK_STEP: &str = "SLURM_ARRAY_TASK_STEP";

impl Shard {
    /// The whole job in one process (`0/1`).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Task `index` of `count`.
    ///
    /// # Errors
    /// [`Error::Shard`] if `count` is 0 or `index ≥ count`.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        let bad = |detail: String| Error::Shard {
            spec: format!("{index}/{count}"),
            detail,
        };
        if count == 0 {
            return Err(bad("the number of tasks must be at least 1".into()));
        }
        if index >= count {
            return Err(bad(format!(
                "task index {index} is not below the number of tasks {count} (indices run 0…{})",
                count - 1
            )));
        }
        Ok(Self { index, count })
    }

    /// Parses a shard specification, reading the process environment for the Slurm forms:
    /// - `I/N`: task `I` of `N` (0-based), e.g. `3/8`;
    /// - `slurm`: this task of the Slurm job array it runs in (see [`Shard::from_slurm`]);
    /// - `slurm/N`: task `$SLURM_ARRAY_TASK_ID` of `N`, whatever ids the array was given — the
    ///   form to use when a few failed tasks of an array are resubmitted on their own
    ///   (`sbatch --array=3,5 …`), where `slurm` would see an array of two tasks.
    ///
    /// # Errors
    /// [`Error::Shard`] for a malformed specification or `I ≥ N`; [`Error::SlurmEnv`] when a
    /// Slurm variable is missing or malformed.
    pub fn parse(spec: &str) -> Result<Self> {
        Self::parse_with(spec, |k| std::env::var(k).ok())
    }

    /// [`Shard::parse`] with the environment given as a function (for tests and for callers
    /// that carry their own environment).
    ///
    /// # Errors
    /// As [`Shard::parse`].
    pub fn parse_with(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let s = spec.trim();
        let bad = |detail: &str| Error::Shard {
            spec: spec.to_string(),
            detail: detail.to_string(),
        };
        if s.eq_ignore_ascii_case("slurm") {
            return Self::from_slurm(env);
        }
        let Some((left, right)) = s.split_once('/') else {
            return Err(bad(
                "expected I/N (task I of N, from 0), `slurm` or `slurm/N`",
            ));
        };
        let count: usize = right
            .trim()
            .parse()
            .map_err(|_| bad("N in I/N must be a whole number of tasks"))?;
        if left.trim().eq_ignore_ascii_case("slurm") {
            let id = var_usize(&env, TASK_ID)?;
            return Self::new(id, count).map_err(|_| Error::SlurmEnv {
                variable: TASK_ID.into(),
                value: Some(id.to_string()),
                detail: format!(
                    "`--shard slurm/{count}` needs array ids 0…{} (sbatch --array=0-{})",
                    count.saturating_sub(1),
                    count.saturating_sub(1)
                ),
            });
        }
        let index: usize = left
            .trim()
            .parse()
            .map_err(|_| bad("I in I/N must be a whole task index from 0"))?;
        Self::new(index, count)
    }

    /// This task of the Slurm job array it runs in: index
    /// `(SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP` of
    /// `SLURM_ARRAY_TASK_COUNT` tasks (`STEP` defaults to 1; without `COUNT`, it is
    /// `(MAX − MIN) / STEP + 1`). Any regular array works: `--array=0-7`, `1-8`, `0-30:10`.
    ///
    /// An irregular list such as `--array=1,3,7` has no such numbering and is refused; so is
    /// an id off the array's step.
    ///
    /// # Errors
    /// [`Error::SlurmEnv`] naming the variable that is missing or malformed, or the
    /// inconsistency found.
    pub fn from_slurm(env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let id = var_usize(&env, TASK_ID)?;
        let min = var_usize(&env, TASK_MIN)?;
        let step = match env(TASK_STEP) {
            Some(_) => var_usize(&env, TASK_STEP)?,
            None => 1,
        };
        if step == 0 {
            return Err(Error::SlurmEnv {
                variable: TASK_STEP.into(),
                value: Some("0".into()),
                detail: "an array step must be at least 1".into(),
            });
        }
        let span = match env(TASK_MAX) {
            Some(_) => {
                let max = var_usize(&env, TASK_MAX)?;
                if max < min {
                    return Err(Error::SlurmEnv {
                        variable: TASK_MAX.into(),
                        value: Some(max.to_string()),
                        detail: format!("below {TASK_MIN} = {min}"),
                    });
                }
                Some((max - min) / step + 1)
            }
            None => None,
        };
        let count = match (env(TASK_COUNT), span) {
            (Some(_), span) => {
                let count = var_usize(&env, TASK_COUNT)?;
                if let Some(span) = span.filter(|&s| s != count) {
                    return Err(Error::SlurmEnv {
                        variable: TASK_COUNT.into(),
                        value: Some(count.to_string()),
                        detail: format!(
                            "the array has {count} tasks but its ids span {span} steps: an irregular list such as --array=1,3,7 cannot be numbered; use a range (--array=0-{}) or --shard slurm/N",
                            count.saturating_sub(1)
                        ),
                    });
                }
                count
            }
            (None, Some(span)) => span,
            (None, None) => {
                return Err(Error::SlurmEnv {
                    variable: format!("{TASK_COUNT} and {TASK_MAX}"),
                    value: None,
                    detail: "one of them is needed to know how many tasks the array has".into(),
                })
            }
        };
        let offset = id.checked_sub(min).filter(|o| o % step == 0);
        let Some(offset) = offset else {
            return Err(Error::SlurmEnv {
                variable: TASK_ID.into(),
                value: Some(id.to_string()),
                detail: format!(
                    "not one of the array's ids {min}, {}, … (step {step})",
                    min + step
                ),
            });
        };
        Self::new(offset / step, count).map_err(|e| Error::SlurmEnv {
            variable: TASK_ID.into(),
            value: Some(id.to_string()),
            detail: e.to_string(),
        })
    }

    /// This task's 0-based index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of tasks.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether this is the whole job (`0/1`).
    pub fn is_all(&self) -> bool {
        self.count == 1
    }

    /// The indices of this task's share of `len` items (possibly empty).
    pub fn range(&self, len: usize) -> Range<usize> {
        // In u128 so that `index · len` cannot overflow; the quotient is ≤ len.
        let at = |i: usize| (i as u128 * len as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// This task's share of `items`.
    pub fn select<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        &items[self.range(items.len())]
    }

    /// This task's band of the rows `0..height` of one scene, with every band boundary at a
    /// multiple of `multiple` rows (e.g. the coarse-to-fine factor, so that a band holds whole
    /// coarse pixels, or the output's tile height, so that bands join tile by tile). The last
    /// band ends at `height`. Empty when there are fewer blocks of `multiple` rows than tasks
    /// and this task gets none.
    ///
    /// # Errors
    /// [`Error::Shard`] if `multiple` is 0.
    pub fn rows(&self, height: usize, multiple: usize) -> Result<Range<usize>> {
        if multiple == 0 {
            return Err(Error::Shard {
                spec: self.to_string(),
                detail: "row bands must be a multiple of at least 1 row".into(),
            });
        }
        let blocks = self.range(height.div_ceil(multiple));
        let end = |b: usize| (b * multiple).min(height);
        Ok(end(blocks.start)..end(blocks.end))
    }
}

impl fmt::Display for Shard {
    /// `I/N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Default for Shard {
    /// [`Shard::ALL`].
    fn default() -> Self {
        Shard::ALL
    }
}

fn var_usize(env: &impl Fn(&str) -> Option<String>, name: &str) -> Result<usize> {
    let value = env(name).ok_or_else(|| Error::SlurmEnv {
        variable: name.into(),
        value: None,
        detail: "`--shard slurm` must run as a task of a Slurm job array (sbatch --array=0-N)"
            .into(),
    })?;
    value.trim().parse().map_err(|_| Error::SlurmEnv {
        variable: name.into(),
        value: Some(value.clone()),
        detail: "not a whole number".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shares_are_contiguous_balanced_and_cover_everything() {
        // ⌊i·10/4⌋ for i = 0…4 is 0, 2, 5, 7, 10 (by hand).
        let shares: Vec<_> = (0..4)
            .map(|i| Shard::new(i, 4).unwrap().range(10))
            .collect();
        assert_eq!(shares, [0..2, 2..5, 5..7, 7..10]);
        // More tasks than items: ⌊i·3/5⌋ = 0, 0, 1, 1, 2, 3.
        let shares: Vec<_> = (0..5).map(|i| Shard::new(i, 5).unwrap().range(3)).collect();
        assert_eq!(shares, [0..0, 0..1, 1..1, 1..2, 2..3]);
        // Every item exactly once, sizes within one, for many (n, N).
        for n in 0..40 {
            for count in 1..12 {
                let mut next = 0;
                for i in 0..count {
                    let r = Shard::new(i, count).unwrap().range(n);
                    assert_eq!(r.start, next, "n {n}, {i}/{count}");
                    assert!(r.len() == n / count || r.len() == n / count + 1);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
        let items = ["a", "b", "c", "d", "e"];
        assert_eq!(Shard::new(1, 2).unwrap().select(&items), ["c", "d", "e"]);
        assert_eq!(Shard::ALL.select(&items), items);
        // Huge lengths do not overflow.
        assert_eq!(Shard::new(1, 2).unwrap().range(usize::MAX).end, usize::MAX);
    }

    #[test]
    fn row_bands_start_on_multiples() {
        // 25 rows in blocks of 4: 7 blocks (the last has 1 row); 3 tasks take blocks
        // 0..2, 2..4, 4..7, i.e. rows 0..8, 8..16, 16..25 (by hand).
        let bands: Vec<_> = (0..3)
            .map(|i| Shard::new(i, 3).unwrap().rows(25, 4).unwrap())
            .collect();
        assert_eq!(bands, [0..8, 8..16, 16..25]);
        assert_eq!(Shard::new(1, 2).unwrap().rows(100, 1).unwrap(), 50..100);
        // One block of 10 rows, two tasks: the first gets nothing.
        assert_eq!(Shard::new(0, 2).unwrap().rows(10, 10).unwrap(), 0..0);
        assert_eq!(Shard::new(1, 2).unwrap().rows(10, 10).unwrap(), 0..10);
        assert!(Shard::ALL.rows(10, 0).is_err());
    }

    #[test]
    fn parses_i_of_n_and_refuses_bad_input() {
        assert_eq!(Shard::parse("3/8").unwrap(), Shard::new(3, 8).unwrap());
        assert_eq!(Shard::parse(" 0/1 ").unwrap(), Shard::ALL);
        assert_eq!(Shard::new(2, 5).unwrap().to_string(), "2/5");
        for (spec, needle) in [
            ("8/8", "task index 8 is not below the number of tasks 8"),
            ("0/0", "at least 1"),
            ("3", "expected I/N"),
            ("a/4", "I in I/N"),
            ("1/-4", "N in I/N"),
            ("-1/4", "I in I/N"),
        ] {
            let e = Shard::parse(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(e.contains("shard `"), "{spec}: {e}");
        }
    }

    #[test]
    fn slurm_arrays_as_slurm_sets_them() {
        // The variables below are what Slurm 22.05 set in tasks of `sbatch --array=…`
        // (printed by the tasks of .ci/slurm-up's one-node cluster).
        let shard = |vars: &[(&str, &str)]| Shard::parse_with("slurm", env(vars));
        // --array=0-3, task 2.
        let s = shard(&[
            (TASK_ID, "2"),
            (TASK_MIN, "0"),
            (TASK_MAX, "3"),
            (TASK_COUNT, "4"),
            (TASK_STEP, "1"),
        ]);
        assert_eq!(s.unwrap(), Shard::new(2, 4).unwrap());
        // --array=2-5, task 5: the last of four.
        let s = shard(&[
            (TASK_ID, "5"),
            (TASK_MIN, "2"),
            (TASK_MAX, "5"),
            (TASK_COUNT, "4"),
        ]);
        assert_eq!(s.unwrap(), Shard::new(3, 4).unwrap());
        // --array=0-15:4 gives ids 0, 4, 8, 12: id 8 is task 2 of 4.
        let s = shard(&[
            (TASK_ID, "8"),
            (TASK_MIN, "0"),
            (TASK_MAX, "12"),
            (TASK_COUNT, "4"),
            (TASK_STEP, "4"),
        ]);
        assert_eq!(s.unwrap(), Shard::new(2, 4).unwrap());
        // Without COUNT (older Slurm), the count comes from MIN, MAX and STEP.
        let s = shard(&[(TASK_ID, "7"), (TASK_MIN, "1"), (TASK_MAX, "8")]);
        assert_eq!(s.unwrap(), Shard::new(6, 8).unwrap());
        // COUNT alone is enough too.
        let s = shard(&[(TASK_ID, "1"), (TASK_MIN, "0"), (TASK_COUNT, "3")]);
        assert_eq!(s.unwrap(), Shard::new(1, 3).unwrap());
    }

    #[test]
    fn slurm_errors_name_the_variable() {
        let err = |spec: &str, vars: &[(&str, &str)]| {
            Shard::parse_with(spec, env(vars)).unwrap_err().to_string()
        };
        let e = err("slurm", &[]);
        assert!(e.contains("SLURM_ARRAY_TASK_ID is not set"), "{e}");
        assert!(e.contains("job array"), "{e}");
        let e = err(
            "slurm",
            &[(TASK_ID, "x1"), (TASK_MIN, "0"), (TASK_COUNT, "2")],
        );
        assert!(
            e.contains("SLURM_ARRAY_TASK_ID = `x1`: not a whole number"),
            "{e}"
        );
        let e = err("slurm", &[(TASK_ID, "1"), (TASK_MIN, "0")]);
        assert!(
            e.contains("SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_MAX"),
            "{e}"
        );
        // --array=1,3,7 as Slurm sets it: min 1, max 7, count 3, step 1.
        let e = err(
            "slurm",
            &[
                (TASK_ID, "3"),
                (TASK_MIN, "1"),
                (TASK_MAX, "7"),
                (TASK_COUNT, "3"),
                (TASK_STEP, "1"),
            ],
        );
        assert!(e.contains("irregular list"), "{e}");
        // An id off the step.
        let e = err(
            "slurm",
            &[
                (TASK_ID, "5"),
                (TASK_MIN, "0"),
                (TASK_MAX, "12"),
                (TASK_STEP, "4"),
            ],
        );
        assert!(e.contains("not one of the array's ids 0, 4"), "{e}");
        let e = err(
            "slurm",
            &[
                (TASK_ID, "1"),
                (TASK_MIN, "0"),
                (TASK_COUNT, "2"),
                (TASK_STEP, "0"),
            ],
        );
        assert!(e.contains("SLURM_ARRAY_TASK_STEP = `0`"), "{e}");
    }

    #[test]
    fn slurm_with_a_fixed_count_survives_resubmitting_one_task() {
        // `sbatch --array=3` to redo task 3 of 8: Slurm says min = max = 3, count 1, so
        // `slurm` alone would make it the whole job; `slurm/8` keeps it task 3 of 8.
        let vars = [
            (TASK_ID, "3"),
            (TASK_MIN, "3"),
            (TASK_MAX, "3"),
            (TASK_COUNT, "1"),
        ];
        assert_eq!(Shard::parse_with("slurm", env(&vars)).unwrap(), Shard::ALL);
        assert_eq!(
            Shard::parse_with("slurm/8", env(&vars)).unwrap(),
            Shard::new(3, 8).unwrap()
        );
        let e = Shard::parse_with("slurm/2", env(&vars))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID = `3`"), "{e}");
        assert!(e.contains("--array=0-1"), "{e}");
    }
}

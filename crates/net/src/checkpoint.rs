//! Checkpoints: safetensors weights + JSON metadata, written atomically.
//!
//! A checkpoint directory holds `model.safetensors` (weights, keyed by the model's
//! `VarBuilder` paths), `optimizer.safetensors` (optimiser buffers, keyed
//! `{variable}.{buffer}`, when saved from a trainer) and `checkpoint.json` (configuration,
//! normalisation, covariate order, training settings, history, crate version), and
//! `manifest.json`, the SHA-256 and size of each of the others.
//!
//! **A checkpoint changes as a whole.** [`Checkpoint::save`] writes every file into a new
//! folder next to the target (`.NAME.new-…`), flushed to disk, then swaps it in: the old
//! folder is renamed aside (`.NAME.old-…`), the new one renamed into place, the old one
//! removed. A kill at any moment leaves the old checkpoint or the new one under the name
//! (or, between the two renames, no folder and a complete `.NAME.old-…` beside it), never a
//! mix of the two. [`Checkpoint::load_on`] checks every file against the manifest, so a
//! folder edited or mixed by hand is refused with the file at fault; folders written before
//! the manifest existed load unchecked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::check::HeldOutCheck;
use crate::config::AmunConfig;
use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::health::LevelHealth;
use crate::init::SeededVarMap;
use crate::model::Amun;
use crate::optim::Solver;
use crate::settings::{EpochRecord, TrainConfig};

/// Format version of `checkpoint.json`.
pub const FORMAT_VERSION: u32 = 1;
const META_FILE: &str = "checkpoint.json";
const WEIGHTS_FILE: &str = "model.safetensors";
const OPTIM_FILE: &str = "optimizer.safetensors";
const MANIFEST_FILE: &str = "manifest.json";

/// `manifest.json`: each file of the checkpoint with its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    /// File name → size and hash.
    files: std::collections::BTreeMap<String, FileDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileDigest {
    bytes: u64,
    sha256: String,
}

impl FileDigest {
    fn of(data: &[u8]) -> Self {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(data);
        Self {
            bytes: data.len() as u64,
            sha256: hash.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// A sibling path of `dir` for the swap: `.NAME.TAG-PID-NANOS`.
fn sibling(dir: &Path, tag: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "checkpoint".into(), |n| n.to_string_lossy().into_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.with_file_name(format!(".{name}.{tag}-{}-{nanos}", std::process::id()))
}

/// Removes what killed saves of `dir` left beside it: `.NAME.new-…` folders (incomplete, or
/// complete but never swapped in) and, when `dir` itself exists, `.NAME.old-…` folders.
fn remove_stale_siblings(dir: &Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let name = name.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let stale = n.starts_with(&format!(".{name}.new-"))
            || (dir.is_dir() && n.starts_with(&format!(".{name}.old-")));
        if stale {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Writes `files` into a new folder and swaps it in for `dir` (see the module documentation).
fn write_folder(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a folder",
            ),
        });
    }
    remove_stale_siblings(dir);
    let new = sibling(dir, "new");
    let result = (|| {
        std::fs::create_dir(&new).map_err(io(&new))?;
        let mut manifest = Manifest {
            files: Default::default(),
        };
        for (name, data) in files {
            let path = new.join(name);
            amun_raster::write_atomic(&path, data)?;
            manifest
                .files
                .insert(name.to_string(), FileDigest::of(data));
        }
        let mpath = new.join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|source| Error::Json {
            path: mpath.clone(),
            source,
        })?;
        amun_raster::write_atomic(&mpath, &json)?;
        let old = dir.exists().then(|| sibling(dir, "old"));
        if let Some(old) = &old {
            std::fs::rename(dir, old).map_err(io(dir))?;
        }
        std::fs::rename(&new, dir).map_err(io(dir))?;
        if let Some(old) = &old {
            std::fs::remove_dir_all(old).map_err(io(old))?;
        }
        // The renames reach the disk with the parent folder.
        if let Ok(d) = std::fs::File::open(&parent) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() && new.exists() {
        let _ = std::fs::remove_dir_all(&new);
    }
    result
}

/// Checks every file listed in `dir`'s manifest (absent in checkpoints written before it).
fn verify(dir: &Path) -> Result<()> {
    let mpath = dir.join(MANIFEST_FILE);
    let text = match std::fs::read(&mpath) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&mpath)(e)),
    };
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|source| Error::Json {
        path: mpath.clone(),
        source,
    })?;
    for (name, want) in &manifest.files {
        let path = dir.join(name);
        let data = std::fs::read(&path).map_err(io(&path))?;
        let got = FileDigest::of(&data);
        if &got != want {
            return Err(Error::BadCheckpoint {
                path: path.clone(),
                detail: format!(
                    "{name} is not the file {MANIFEST_FILE} lists ({} bytes, SHA-256 {}…; the manifest says {} bytes, {}…): the checkpoint was changed or mixed with another; train again or restore it",
                    got.bytes,
                    &got.sha256[..12],
                    want.bytes,
                    &want.sha256[..12.min(want.sha256.len())]
                ),
            });
        }
    }
    Ok(())
}

/// The optimiser's scalar state (its buffers are in `optimizer.safetensors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerMeta {
    /// The solver and its hyperparameters.
    pub solver: Solver,
    /// Steps taken (Adam's bias correction needs it).
    pub steps: u64,
}

/// Everything in `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`FORMAT_VERSION`] at writing.
    pub format_version: u32,
    /// `amun-net`'s version at writing.
    pub crate_version: String,
    /// The architecture.
    pub config: AmunConfig,
    /// Auxiliary channel order (after aspect encoding), for information and checks.
    pub aux_channels: Vec<String>,
    /// Normalisation statistics of the training patches.
    pub normalization: Normalization,
    /// The training settings, if trained here.
    pub train_config: Option<TrainConfig>,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimiser state summary, if saved from a trainer.
    pub optimizer: Option<OptimizerMeta>,
    /// The model against interpolation and the prior on held-out pixels, when checked.
    #[serde(default)]
    pub held_out: Option<HeldOutCheck>,
    /// Each level's health after the epoch whose weights these are (empty when not trained
    /// here, or trained before this was recorded).
    #[serde(default)]
    pub health: Vec<LevelHealth>,
}

impl CheckpointMeta {
    /// Metadata for the current crate version.
    pub fn new(
        config: AmunConfig,
        normalization: Normalization,
        train_config: Option<TrainConfig>,
        history: Vec<EpochRecord>,
        epochs_done: usize,
        optimizer: Option<OptimizerMeta>,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            aux_channels: config.aux_channels(),
            config,
            normalization,
            train_config,
            history,
            epochs_done,
            optimizer,
            held_out: None,
            health: Vec::new(),
        }
    }
}

/// A trained (or partly trained) network with everything needed to predict or resume.
pub struct Checkpoint {
    meta: CheckpointMeta,
    vars: SeededVarMap,
    model: Amun,
    optimizer_state: Vec<(String, Tensor)>,
    device: Device,
    dir: PathBuf,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("meta", &self.meta)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tensors in the safetensors format, in memory (to be written atomically).
fn safetensors_bytes(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    Ok(safetensors::serialize(tensors, None).map_err(candle_core::Error::from)?)
}

impl Checkpoint {
    /// Builds a checkpoint from metadata and (copies of) named weights.
    ///
    /// # Errors
    /// If the weights do not fit the configuration.
    pub fn from_parts(
        meta: CheckpointMeta,
        weights: &[(String, Var)],
        optimizer_state: Vec<(String, Tensor)>,
        device: &Device,
    ) -> Result<Self> {
        let tensors = weights
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Self::from_tensors(meta, tensors, optimizer_state, device, PathBuf::new())
    }

    fn from_tensors(
        meta: CheckpointMeta,
        tensors: HashMap<String, Tensor>,
        optimizer_state: Vec<(String, Tensor)>,
        device: &Device,
        dir: PathBuf,
    ) -> Result<Self> {
        let vars = SeededVarMap::new(0);
        {
            let mut data = vars
                .varmap()
                .data()
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for (n, t) in tensors {
                data.insert(n, Var::from_tensor(&t.to_device(device)?)?);
            }
        }
        let before = vars.sorted_vars().len();
        let model = Amun::new(&meta.config, vars.var_builder(device))?;
        let after = vars.sorted_vars().len();
        if after != before {
            // The builder created variables the weights lacked.
            let have: Vec<String> = vars.sorted_vars().into_iter().map(|(n, _)| n).collect();
            return Err(Error::BadCheckpoint {
                path: dir,
                detail: format!(
                    "{} weight(s) missing for this configuration ({} expected, e.g. among {:?})",
                    after - before,
                    after,
                    &have[..have.len().min(3)]
                ),
            });
        }
        Ok(Self {
            meta,
            vars,
            model,
            optimizer_state,
            device: device.clone(),
            dir,
        })
    }

    /// The metadata.
    pub fn meta(&self) -> &CheckpointMeta {
        &self.meta
    }

    /// The held-out check, when one was made (see [`HeldOutCheck`]).
    pub fn held_out(&self) -> Option<&HeldOutCheck> {
        self.meta.held_out.as_ref()
    }

    /// Records the held-out check (saved with the checkpoint).
    pub fn set_held_out(&mut self, check: HeldOutCheck) {
        self.meta.held_out = Some(check);
    }

    /// The architecture.
    pub fn config(&self) -> &AmunConfig {
        &self.meta.config
    }

    /// The normalisation statistics.
    pub fn normalization(&self) -> &Normalization {
        &self.meta.normalization
    }

    /// The per-epoch training history.
    pub fn history(&self) -> &[EpochRecord] {
        &self.meta.history
    }

    /// The network.
    pub fn model(&self) -> &Amun {
        &self.model
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weights, sorted by name.
    pub fn weights(&self) -> Vec<(String, Var)> {
        self.vars.sorted_vars()
    }

    /// The directory it was loaded from (empty if never loaded).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn optimizer_state(&self) -> &[(String, Tensor)] {
        &self.optimizer_state
    }

    /// Copies this checkpoint's weights into the same-named variables of `target`.
    pub(crate) fn copy_weights_into(&self, target: &SeededVarMap) -> Result<()> {
        let mine = self.vars.sorted_vars();
        for (name, var) in target.sorted_vars() {
            let (_, src) =
                mine.iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| Error::BadCheckpoint {
                        path: self.dir.clone(),
                        detail: format!("no weight `{name}`"),
                    })?;
            var.set(&src.as_tensor().to_device(var.device())?)?;
        }
        Ok(())
    }

    /// Writes the checkpoint as the folder `dir`, replacing it as a whole (see the module
    /// documentation): other files in an existing `dir` do not survive.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Json`] naming the file, or tensor errors; `dir` is then
    /// unchanged.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let weights: HashMap<String, Tensor> = self
            .vars
            .sorted_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let mut files = vec![(WEIGHTS_FILE, safetensors_bytes(&weights)?)];
        if !self.optimizer_state.is_empty() {
            let state: HashMap<String, Tensor> = self.optimizer_state.iter().cloned().collect();
            files.push((OPTIM_FILE, safetensors_bytes(&state)?));
        }
        let json = serde_json::to_vec_pretty(&self.meta).map_err(|source| Error::Json {
            path: dir.join(META_FILE),
            source,
        })?;
        files.push((META_FILE, json));
        write_folder(dir, &files)
    }

    /// Loads a checkpoint onto the CPU.
    ///
    /// # Errors
    /// As [`Checkpoint::load_on`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_on(dir, &Device::Cpu)
    }

    /// Loads a checkpoint onto `device`.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Json`] for unreadable files, [`Error::BadCheckpoint`] for a
    /// file that is not the one the manifest lists, a newer format or weights that do not fit
    /// the configuration.
    pub fn load_on(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        verify(dir)?;
        let meta_path = dir.join(META_FILE);
        let bytes = std::fs::read(&meta_path).map_err(io(&meta_path))?;
        let meta: CheckpointMeta =
            serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                path: meta_path.clone(),
                source,
            })?;
        if meta.format_version > FORMAT_VERSION {
            return Err(Error::BadCheckpoint {
                path: dir.to_path_buf(),
                detail: format!(
                    "format {} is newer than this amun-net ({FORMAT_VERSION})",
                    meta.format_version
                ),
            });
        }
        if meta.aux_channels != meta.config.aux_channels() {
            return Err(Error::BadCheckpoint {
                path: dir.to_path_buf(),
                detail: format!(
                    "channel list {:?} does not match the configuration's {:?}",
                    meta.aux_channels,
                    meta.config.aux_channels()
                ),
            });
        }
        let wpath = dir.join(WEIGHTS_FILE);
        let tensors =
            candle_core::safetensors::load(&wpath, device).map_err(|e| Error::BadCheckpoint {
                path: wpath.clone(),
                detail: e.to_string(),
            })?;
        let opath = dir.join(OPTIM_FILE);
        let optimizer_state = if opath.exists() {
            let mut v: Vec<(String, Tensor)> = candle_core::safetensors::load(&opath, device)
                .map_err(|e| Error::BadCheckpoint {
                    path: opath.clone(),
                    detail: e.to_string(),
                })?
                .into_iter()
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        } else {
            Vec::new()
        };
        Self::from_tensors(meta, tensors, optimizer_state, device, dir.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::TileParams;
    use crate::settings::TrainConfig;
    use crate::testutil::{scene, tiny_config};
    use crate::train::train;

    fn trained() -> Checkpoint {
        let tc = TrainConfig {
            epochs: 1,
            batch_size: 8,
            patch: 16,
            stride: 16,
            split_block: 32,
            ..TrainConfig::paper()
        };
        train(&tiny_config(), &tc, &[scene(64, 4, 0.0)], |_| {}).unwrap()
    }

    #[test]
    fn round_trip_gives_bit_identical_predictions() {
        let ck = trained();
        let dir = tempfile::tempdir().unwrap();
        ck.save(dir.path()).unwrap();
        for f in [META_FILE, WEIGHTS_FILE, OPTIM_FILE, MANIFEST_FILE] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
        let back = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(back.meta(), ck.meta());
        assert_eq!(back.meta().crate_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            back.meta().aux_channels,
            ["ndvi", "height", "aspect:northness", "aspect:eastness"]
        );
        let sc = scene(64, 4, 1.0);
        let tiles = TileParams {
            tile: Some(32),
            ..TileParams::default()
        };
        let a = ck
            .predict(&sc.coarse_lst, &sc.covariates, &tiles, |_, _| {})
            .unwrap();
        let b = back
            .predict(&sc.coarse_lst, &sc.covariates, &tiles, |_, _| {})
            .unwrap();
        let bits =
            |r: &amun_raster::Raster| r.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        // Saving again over an existing checkpoint swaps the folder, leaving nothing beside it.
        let parent = tempfile::tempdir().unwrap();
        let target = parent.path().join("model");
        back.save(&target).unwrap();
        std::fs::write(target.join("stale.txt"), "from an earlier run").unwrap();
        back.save(&target).unwrap();
        assert!(!target.join("stale.txt").exists());
        let names: Vec<_> = std::fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["model"]);
        // What a save killed before its swap leaves beside the folder goes with the next save.
        std::fs::create_dir(parent.path().join(".model.new-1-2")).unwrap();
        std::fs::write(
            parent.path().join(".model.new-1-2/model.safetensors"),
            "part",
        )
        .unwrap();
        back.save(&target).unwrap();
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_mixed_checkpoint_is_refused() {
        // Issue 19: new weights next to an old checkpoint.json (a kill between two file
        // replacements) were accepted and predicted up to 2.4 K off.
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ck = trained();
        ck.save(a.path()).unwrap();
        let tc = TrainConfig {
            epochs: 1,
            batch_size: 8,
            patch: 16,
            stride: 16,
            split_block: 32,
            seed: 99,
            ..TrainConfig::paper()
        };
        let other = train(&tiny_config(), &tc, &[scene(64, 4, 0.5)], |_| {}).unwrap();
        other.save(b.path()).unwrap();
        std::fs::copy(b.path().join(WEIGHTS_FILE), a.path().join(WEIGHTS_FILE)).unwrap();
        let e = Checkpoint::load(a.path()).unwrap_err().to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("manifest.json"),
            "{e}"
        );
        // Without a manifest (written before it existed) the folder loads unchecked.
        std::fs::remove_file(b.path().join(MANIFEST_FILE)).unwrap();
        assert!(Checkpoint::load(b.path()).is_ok());
    }

    #[test]
    fn broken_checkpoints_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let e = Checkpoint::load(dir.path()).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        let ck = trained();
        ck.save(dir.path()).unwrap();
        // Edited by hand below: without the manifest, the checks on the content speak.
        std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
        // A configuration the weights do not fit.
        let mut meta = ck.meta().clone();
        meta.config.channels = 5;
        meta.aux_channels = meta.config.aux_channels();
        std::fs::write(
            dir.path().join(META_FILE),
            serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
        assert!(Checkpoint::load(dir.path()).is_err());
        meta = ck.meta().clone();
        meta.format_version = FORMAT_VERSION + 1;
        std::fs::write(
            dir.path().join(META_FILE),
            serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
        let e = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
    }
}

//! Checkpoints: safetensors weights + JSON metadata, written atomically.
//!
//! A checkpoint directory holds `model.safetensors` (weights, keyed by the model's
//! `VarBuilder` paths), `optimizer.safetensors` (optimiser buffers, keyed
//! `{variable}.{buffer}`, when saved from a trainer) and `checkpoint.json` (configuration,
//! normalisation, covariate order, training settings, history, crate version). Each file is
//! written to a temporary file in the directory and renamed into place; the JSON goes last.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::check::HeldOutCheck;
use crate::config::AmunConfig;
use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::init::SeededVarMap;
use crate::model::Amun;
use crate::optim::Solver;
use crate::train::{EpochRecord, TrainConfig};

/// Format version of `checkpoint.json`.
pub const FORMAT_VERSION: u32 = 1;
const META_FILE: &str = "checkpoint.json";
const WEIGHTS_FILE: &str = "model.safetensors";
const OPTIM_FILE: &str = "optimizer.safetensors";

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

    /// Writes the checkpoint into `dir` (created if needed), each file atomically.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Json`] naming the file, or tensor errors.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let weights: HashMap<String, Tensor> = self
            .vars
            .sorted_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        amun_raster::write_atomic(dir.join(WEIGHTS_FILE), &safetensors_bytes(&weights)?)?;
        let optim_path = dir.join(OPTIM_FILE);
        if self.optimizer_state.is_empty() {
            if optim_path.exists() {
                std::fs::remove_file(&optim_path).map_err(io(&optim_path))?;
            }
        } else {
            let state: HashMap<String, Tensor> = self.optimizer_state.iter().cloned().collect();
            amun_raster::write_atomic(&optim_path, &safetensors_bytes(&state)?)?;
        }
        let meta_path = dir.join(META_FILE);
        let json = serde_json::to_vec_pretty(&self.meta).map_err(|source| Error::Json {
            path: meta_path.clone(),
            source,
        })?;
        Ok(amun_raster::write_atomic(&meta_path, &json)?)
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
    /// newer format or weights that do not fit the configuration.
    pub fn load_on(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
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
    use crate::testutil::{scene, tiny_config};
    use crate::train::{train, TrainConfig};

    fn trained() -> Checkpoint {
        let tc = TrainConfig {
            epochs: 1,
            batch_size: 8,
            patch: 16,
            stride: 16,
            split_block: 32,
            ..TrainConfig::default()
        };
        train(&tiny_config(), &tc, &[scene(64, 4, 0.0)], |_| {}).unwrap()
    }

    #[test]
    fn round_trip_gives_bit_identical_predictions() {
        let ck = trained();
        let dir = tempfile::tempdir().unwrap();
        ck.save(dir.path()).unwrap();
        for f in [META_FILE, WEIGHTS_FILE, OPTIM_FILE] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
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
        // Saving again over an existing checkpoint works (rename replaces).
        back.save(dir.path()).unwrap();
    }

    #[test]
    fn broken_checkpoints_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let e = Checkpoint::load(dir.path()).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        let ck = trained();
        ck.save(dir.path()).unwrap();
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

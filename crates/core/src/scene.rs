//! A scene: coarse LST plus fine covariates on a grid that refines it.

use std::path::PathBuf;

use amun_raster::{resample, Grid, Raster, Resampling, Stack};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A coarse LST raster and a fine covariate stack whose grid refines the LST grid by an
/// integer factor, with an optional fine reference LST (for training and scoring) and an
/// optional month and hour.
#[derive(Debug, Clone)]
pub struct Scene {
    name: String,
    coarse_lst: Raster,
    covariates: Stack,
    reference: Option<Raster>,
    factor: usize,
    month: Option<u32>,
    hour: Option<u32>,
    resampled: Vec<Resampled>,
    one_scale_up: bool,
}

/// An input that was not on the fine grid and was resampled (or reprojected) onto it, as
/// `amun prepare` reports and `scene.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resampled {
    /// What it became: a covariate's name, `reference`, or a raw band (`nir band`, …).
    pub input: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its grid as read.
    pub grid: String,
    /// How it was put onto the fine grid.
    pub method: Resampling,
    /// Whether its pixel edges fall on the fine grid's (one pixel size an integer multiple
    /// of the other); when not, values were interpolated across pixel edges.
    pub nested: bool,
    /// Whether it was reprojected from another CRS (feature `proj`).
    pub reprojected: bool,
}

impl std::fmt::Display for Resampled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {} onto the fine grid by {:?}{} (was {})",
            self.input,
            self.file.display(),
            if self.reprojected {
                "reprojected"
            } else {
                "resampled"
            },
            self.method,
            if self.nested || self.reprojected {
                ""
            } else {
                ", its pixels do not nest in the fine grid's"
            },
            self.grid
        )
    }
}

impl Scene {
    /// A scene from a coarse LST and fine covariates.
    ///
    /// # Errors
    /// [`Error::Scene`] if there are no covariates or the covariate grid is not an integer
    /// refinement of the LST grid covering the same area (the message says what differs).
    pub fn new(name: impl Into<String>, coarse_lst: Raster, covariates: Stack) -> Result<Self> {
        let name = name.into();
        if covariates.is_empty() {
            return Err(Error::Scene {
                scene: name,
                detail: "no covariate bands".into(),
            });
        }
        let factor = covariates
            .grid()
            .refinement_of(coarse_lst.grid())
            .map_err(|e| Error::Scene {
                scene: name.clone(),
                detail: format!("the covariate grid does not refine the LST grid: {e}"),
            })?;
        if factor < 2 {
            return Err(Error::Scene {
                scene: name,
                detail: "covariates are on the LST grid itself (factor 1): nothing to downscale"
                    .into(),
            });
        }
        Ok(Self {
            name,
            coarse_lst,
            covariates,
            reference: None,
            factor,
            month: None,
            hour: None,
            resampled: Vec::new(),
            one_scale_up: false,
        })
    }

    /// This scene with a fine reference LST (the truth, for training and scoring).
    ///
    /// # Errors
    /// [`Error::Scene`] if the reference is not on the fine grid.
    pub fn with_reference(mut self, reference: Raster) -> Result<Self> {
        reference
            .grid()
            .check_same(self.covariates.grid())
            .map_err(|e| Error::Scene {
                scene: self.name.clone(),
                detail: format!("reference LST is not on the fine grid: {e}"),
            })?;
        self.reference = Some(reference);
        Ok(self)
    }

    /// This scene without its fine reference: what a method that must not see the truth is
    /// given.
    pub fn without_reference(mut self) -> Self {
        self.reference = None;
        self
    }

    /// This scene with a month (1–12) and hour (0–23), when known.
    ///
    /// # Errors
    /// [`Error::Scene`] for a month outside 1–12 or an hour outside 0–23.
    pub fn with_time(mut self, month: Option<u32>, hour: Option<u32>) -> Result<Self> {
        check_time(&self.name, month, hour)?;
        self.month = month;
        self.hour = hour;
        Ok(self)
    }

    /// This scene with the record of which inputs were resampled onto the fine grid.
    pub fn with_resampled(mut self, resampled: Vec<Resampled>) -> Self {
        self.resampled = resampled;
        self
    }

    /// This scene marked as a training pair one scale up (see [`Scene::prior_fit`]); made by
    /// [`Scene::coarsened`] and by the stages' pairs.
    pub(crate) fn into_one_scale_up(mut self) -> Self {
        self.one_scale_up = true;
        self
    }

    /// Whether this is a training pair one scale up ([`Scene::coarsened`], the stages' pairs).
    pub fn is_one_scale_up(&self) -> bool {
        self.one_scale_up
    }

    /// Where a prior base of a learned method fits its coefficients, if not on the coarse
    /// LST: for a pair one scale up, its reference — the coarse field on whose cells the
    /// prior is fitted when the model is applied at the target scale (a 64 × 64-cell region
    /// gives a pair of 6 × 6 cells, too few for the covariate prior's terms). The coarse LST
    /// still sets the block means. `None` for every other scene.
    pub fn prior_fit(&self) -> Option<&Raster> {
        self.reference.as_ref().filter(|_| self.one_scale_up)
    }

    /// The inputs that were resampled or reprojected onto the fine grid when the scene was
    /// prepared.
    pub fn resampled(&self) -> &[Resampled] {
        &self.resampled
    }

    /// The scene's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Coarse LST (kelvin) on the coarse grid.
    pub fn coarse_lst(&self) -> &Raster {
        &self.coarse_lst
    }

    /// Fine covariates.
    pub fn covariates(&self) -> &Stack {
        &self.covariates
    }

    /// Fine reference LST, if known.
    pub fn reference(&self) -> Option<&Raster> {
        self.reference.as_ref()
    }

    /// The fine reference LST, or an error naming the method that needs it.
    ///
    /// # Errors
    /// [`Error::Method`] if the scene has no reference.
    pub fn require_reference(&self, method: &str) -> Result<&Raster> {
        self.reference.as_ref().ok_or_else(|| Error::Method {
            method: method.to_string(),
            detail: format!("scene `{}` has no fine reference LST", self.name),
        })
    }

    /// Ratio of coarse to fine pixel size.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Month 1–12, if known.
    pub fn month(&self) -> Option<u32> {
        self.month
    }

    /// Hour 0–23, if known.
    pub fn hour(&self) -> Option<u32> {
        self.hour
    }

    /// The fine grid.
    pub fn fine_grid(&self) -> &Grid {
        self.covariates.grid()
    }

    /// The coarse grid.
    pub fn coarse_grid(&self) -> &Grid {
        self.coarse_lst.grid()
    }

    /// The coarse LST interpolated onto the fine grid.
    ///
    /// # Errors
    /// Resampling errors.
    pub fn interpolated_lst(&self, method: Resampling) -> Result<Raster> {
        Ok(resample(&self.coarse_lst, self.fine_grid(), method)?)
    }
}

/// Refuses a month outside 1–12 or an hour outside 0–23.
pub(crate) fn check_time(scene: &str, month: Option<u32>, hour: Option<u32>) -> Result<()> {
    let bad = |detail: String| Error::Scene {
        scene: scene.to_string(),
        detail,
    };
    if let Some(m) = month.filter(|m| !(1..=12).contains(m)) {
        return Err(bad(format!("month {m} is not a month (1–12)")));
    }
    if let Some(h) = hour.filter(|h| *h > 23) {
        return Err(bad(format!("hour {h} is not an hour of the day (0–23)")));
    }
    Ok(())
}

/// The file names of a scene folder (see [`Scene::save`] and [`Scene::load`]).
pub mod layout {
    /// Scene description: name, month, hour, factor and the files below.
    pub const MANIFEST: &str = "scene.json";
    /// Coarse LST, one band, kelvin.
    pub const COARSE_LST: &str = "lst_coarse.tif";
    /// Fine covariates, one band each, named.
    pub const COVARIATES: &str = "covariates.tif";
    /// Fine reference LST (optional), kelvin.
    pub const REFERENCE: &str = "lst_reference.tif";
}

/// What `scene.json` records.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SceneManifest {
    /// Scene name.
    pub name: String,
    /// Month 1–12, if known.
    pub month: Option<u32>,
    /// Hour 0–23, if known.
    pub hour: Option<u32>,
    /// Coarse-to-fine factor.
    pub factor: usize,
    /// Covariate band names in order.
    pub covariates: Vec<String>,
    /// Whether `lst_reference.tif` is present.
    pub has_reference: bool,
    /// The inputs that were resampled or reprojected onto the fine grid (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resampled: Vec<Resampled>,
    /// The amun version that wrote the folder.
    pub amun_version: String,
}

impl SceneManifest {
    /// Reads `scene.json` from a scene folder.
    ///
    /// # Errors
    /// [`Error::Io`]/[`Error::Json`] naming the file.
    pub fn read(dir: &std::path::Path) -> Result<Self> {
        let mpath = dir.join(layout::MANIFEST);
        let text = std::fs::read_to_string(&mpath).map_err(|source| Error::Io {
            path: mpath.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            path: mpath,
            source,
        })
    }
}

impl Scene {
    /// Writes the scene as a folder: `scene.json`, `lst_coarse.tif`, `covariates.tif` and,
    /// when known, `lst_reference.tif` (float32, Deflate, tiled GeoTIFFs). Every file is
    /// written to a temporary name and renamed into place.
    ///
    /// # Errors
    /// [`Error::Io`] if the folder cannot be created; raster write errors.
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        use amun_raster::{write, write_raster, WriteOptions};
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let opts = WriteOptions::default();
        write_raster(dir.join(layout::COARSE_LST), &self.coarse_lst, &opts)?;
        write(dir.join(layout::COVARIATES), &self.covariates, &opts)?;
        if let Some(r) = &self.reference {
            write_raster(dir.join(layout::REFERENCE), r, &opts)?;
        }
        let manifest = SceneManifest {
            name: self.name.clone(),
            month: self.month,
            hour: self.hour,
            factor: self.factor,
            covariates: self.covariates.names().to_vec(),
            has_reference: self.reference.is_some(),
            resampled: self.resampled.clone(),
            amun_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        crate::report::write_json(&dir.join(layout::MANIFEST), &manifest)
    }

    /// Reads a scene folder written by [`Scene::save`] (or `amun prepare`).
    ///
    /// # Errors
    /// [`Error::Io`]/[`Error::Json`] for a missing or broken `scene.json`; raster read errors
    /// naming the file; [`Error::Scene`] if the files do not form a consistent scene.
    pub fn load(dir: &std::path::Path) -> Result<Self> {
        use amun_indices::landcover_raster;
        use amun_raster::{read, read_band, BandKind};
        let mpath = dir.join(layout::MANIFEST);
        let m = SceneManifest::read(dir)?;
        let lst = read_band(dir.join(layout::COARSE_LST), 1)?;
        let raw = read(dir.join(layout::COVARIATES))?;
        // Land cover is categorical whatever the file recorded.
        let mut covariates = Stack::new(raw.grid().clone());
        for (name, band) in raw.iter() {
            let band = if name == amun_indices::Covariate::Landcover.name()
                || band.kind() == BandKind::Categorical
            {
                landcover_raster(band.clone()).map_err(|e| Error::Scene {
                    scene: m.name.clone(),
                    detail: format!("band `{name}` of {}: {e}", layout::COVARIATES),
                })?
            } else {
                band.clone()
            };
            covariates.push(name, band)?;
        }
        if covariates.names() != m.covariates.as_slice() {
            return Err(Error::Scene {
                scene: m.name,
                detail: format!(
                    "{} has bands [{}] but {} lists [{}]",
                    layout::COVARIATES,
                    covariates.names().join(", "),
                    layout::MANIFEST,
                    m.covariates.join(", ")
                ),
            });
        }
        let mut scene = Scene::new(m.name.clone(), lst, covariates)?
            .with_time(m.month, m.hour)
            .map_err(|e| match e {
                Error::Scene { scene, detail } => Error::Scene {
                    scene,
                    detail: format!("{}: {detail}", mpath.display()),
                },
                other => other,
            })?
            .with_resampled(m.resampled.clone());
        if scene.factor != m.factor {
            return Err(Error::Scene {
                scene: m.name,
                detail: format!(
                    "grids nest by a factor {} but {} says {}",
                    scene.factor,
                    layout::MANIFEST,
                    m.factor
                ),
            });
        }
        let rpath = dir.join(layout::REFERENCE);
        if m.has_reference || rpath.exists() {
            scene = scene.with_reference(read_band(rpath, 1)?)?;
        }
        Ok(scene)
    }

    /// The same scene one scale up, for training under scale invariance (docs/design.md §5):
    /// the coarse LST aggregated again by the factor becomes the input, the covariates are
    /// aggregated to the coarse grid (mean for continuous bands, mode for land cover) and
    /// the coarse LST becomes the reference.
    ///
    /// A coarse grid that is not a multiple of the factor is cropped to the largest one
    /// (rows and columns are dropped at the bottom and right): the partial blocks there
    /// cannot make a training pair. Downscaling the scene itself is not affected.
    ///
    /// # Errors
    /// [`Error::Scene`] if the coarse grid holds fewer than 2×2 whole blocks of the factor.
    pub fn coarsened(&self) -> Result<Scene> {
        let k = self.factor;
        let (w, h) = (self.coarse_grid().width(), self.coarse_grid().height());
        let (cw, ch) = (w - w % k, h - h % k);
        if cw / k < 2 || ch / k < 2 {
            return Err(Error::Scene {
                scene: self.name.clone(),
                detail: format!(
                    "the coarse grid ({w}×{h} cells) must hold at least 2×2 blocks of the factor {k} ({}×{} cells) to train one scale up; use the physical prior (`amun baseline prior`) or a smaller factor (stages)",
                    2 * k,
                    2 * k
                ),
            });
        }
        let coarse = self.coarse_lst.window(0, 0, cw, ch)?;
        let fine = self.covariates.window(0, 0, cw * k, ch * k)?;
        let coarser = coarse.block_mean(k, 0.5)?;
        let covariates = amun_indices::coarsen_stack(&fine, k, 0.5).map_err(|e| Error::Scene {
            scene: self.name.clone(),
            detail: format!("aggregating covariates to the coarse grid: {e}"),
        })?;
        Ok(
            Scene::new(format!("{} (one scale up)", self.name), coarser, covariates)?
                .with_reference(coarse)?
                .with_time(self.month, self.hour)?
                .into_one_scale_up(),
        )
    }
}

#[cfg(test)]
mod tests {
    use amun_raster::{Grid, Raster, Stack};

    use super::*;

    fn scene() -> Scene {
        let coarse = Grid::geographic(10.0, 50.0, 0.1, 4, 4).unwrap();
        let mut cov = Stack::new(coarse.refine(5).unwrap());
        cov.push("ndvi", Raster::filled(coarse.refine(5).unwrap(), 0.5))
            .unwrap();
        Scene::new("s", Raster::filled(coarse, 290.0), cov).unwrap()
    }

    #[test]
    fn month_and_hour_are_checked() {
        // issue 19: `amun prepare --month 13 --hour 99` was written into scene.json.
        for (m, h, what) in [(13, 12, "month 13"), (0, 12, "month 0"), (6, 24, "hour 24")] {
            let e = scene().with_time(Some(m), Some(h)).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
        let s = scene().with_time(Some(12), Some(0)).unwrap();
        assert_eq!((s.month(), s.hour()), (Some(12), Some(0)));
    }

    #[test]
    fn resampled_inputs_survive_the_folder_and_a_bad_month_is_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let record = Resampled {
            input: "ndvi".into(),
            file: "ndvi_250m.tif".into(),
            grid: "13×13 px".into(),
            method: Resampling::Bilinear,
            nested: false,
            reprojected: false,
        };
        let s = scene()
            .with_time(Some(7), Some(13))
            .unwrap()
            .with_resampled(vec![record.clone()]);
        s.save(dir.path()).unwrap();
        let back = Scene::load(dir.path()).unwrap();
        assert_eq!(back.resampled(), [record]);
        assert_eq!((back.month(), back.hour()), (Some(7), Some(13)));
        // A hand-edited scene.json with month 13 is refused, naming the file.
        let mpath = dir.path().join(layout::MANIFEST);
        let text = std::fs::read_to_string(&mpath).unwrap();
        std::fs::write(&mpath, text.replace("\"month\": 7", "\"month\": 13")).unwrap();
        let e = Scene::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("month 13") && e.contains("scene.json"), "{e}");
        // Folders written before the record existed load with an empty one.
        let s = scene().with_time(Some(7), None).unwrap();
        s.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(&mpath).unwrap();
        assert!(!text.contains("resampled"), "{text}");
        assert!(Scene::load(dir.path()).unwrap().resampled().is_empty());
    }
}

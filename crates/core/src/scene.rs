//! A scene: coarse LST plus fine covariates on a grid that refines it.

use amun_raster::{resample, Grid, Raster, Resampling, Stack};

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

    /// This scene with a month (1–12) and hour (0–23), when known.
    pub fn with_time(mut self, month: Option<u32>, hour: Option<u32>) -> Self {
        self.month = month;
        self.hour = hour;
        self
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
    /// The amun version that wrote the folder.
    pub amun_version: String,
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
        let text = std::fs::read_to_string(&mpath).map_err(|source| Error::Io {
            path: mpath.clone(),
            source,
        })?;
        let m: SceneManifest = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: mpath.clone(),
            source,
        })?;
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
        let mut scene = Scene::new(m.name.clone(), lst, covariates)?.with_time(m.month, m.hour);
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
                .with_time(self.month, self.hour),
        )
    }
}

//! Building a [`Scene`] from a user's files: align every input onto the fine grid.

use std::path::{Path, PathBuf};

use amun_indices::{
    landcover_raster, mndwi, ndbi, ndvi, slope_aspect, Covariate, Covariates, Reflectance,
    SlopeParams,
};
use amun_raster::{read_band, resample, BandKind, Grid, Raster, Resampling, Stack};

use crate::error::{Error, Result};
use crate::scene::Scene;

/// The files a scene is made from. Every covariate is optional; the model's covariate list
/// decides which are needed. Inputs on other grids are resampled onto the fine grid (average
/// when they are finer, bilinear when coarser; mode/nearest for land cover); inputs in
/// another CRS are reprojected with the `proj` feature, refused without it.
#[derive(Debug, Clone, Default)]
pub struct SceneInputs {
    /// Scene name (defaults to the LST file's stem).
    pub name: Option<String>,
    /// Coarse LST GeoTIFF (kelvin), band 1.
    pub lst: PathBuf,
    /// Coarse-to-fine factor (e.g. 10 for 0.1° → 0.01°).
    pub factor: usize,
    /// Month 1–12 and hour 0–23, if known.
    pub month: Option<u32>,
    /// Hour 0–23, if known.
    pub hour: Option<u32>,
    /// NDVI.
    pub ndvi: Option<PathBuf>,
    /// IGBP land-cover codes (MCD12Q1 LC_Type1).
    pub landcover: Option<PathBuf>,
    /// Surface reflectance (or albedo).
    pub reflectance: Option<PathBuf>,
    /// MNDWI.
    pub mndwi: Option<PathBuf>,
    /// NDBI.
    pub ndbi: Option<PathBuf>,
    /// Slope in degrees.
    pub slope: Option<PathBuf>,
    /// Aspect in degrees clockwise from north.
    pub aspect: Option<PathBuf>,
    /// A DEM: slope and aspect are computed from it (Horn) when not given, and it is
    /// added as `elevation` when `elevation_band` is set.
    pub dem: Option<PathBuf>,
    /// Add the DEM as an `elevation` covariate.
    pub elevation_band: bool,
    /// Raw reflectance bands from which missing NDVI, MNDWI and NDBI are computed.
    pub green: Option<PathBuf>,
    /// Red band.
    pub red: Option<PathBuf>,
    /// Near-infrared band.
    pub nir: Option<PathBuf>,
    /// Shortwave-infrared band.
    pub swir: Option<PathBuf>,
    /// How raw band values decode to reflectance (e.g. [`Reflectance::modis`]).
    pub band_scaling: Reflectance,
    /// Extra named covariates.
    pub extra: Vec<(String, PathBuf)>,
    /// Fine reference LST (optional, for scoring).
    pub reference: Option<PathBuf>,
}

fn scene_err(name: &str, path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::Scene {
        scene: name.to_string(),
        detail: format!("{}: {detail}", path.display()),
    }
}

/// Puts a raster onto `target`: same grid → as is; another grid in the same CRS →
/// resampled; another CRS → reprojected (feature `proj`) or an error.
fn align(r: Raster, target: &Grid, path: &Path, name: &str) -> Result<Raster> {
    if r.grid().check_same(target).is_ok() {
        return Ok(r);
    }
    let categorical = r.kind() == BandKind::Categorical;
    let finer = r.grid().pixel_width() < target.pixel_width() * 0.999;
    let method = match (categorical, finer) {
        (true, true) => Resampling::Mode,
        (true, false) => Resampling::Nearest,
        (false, true) => Resampling::Average,
        (false, false) => Resampling::Bilinear,
    };
    if r.grid().crs() != target.crs() {
        #[cfg(feature = "proj")]
        {
            return amun_raster::reproject(&r, target, method)
                .map_err(|e| scene_err(name, path, format!("reprojecting: {e}")));
        }
        #[cfg(not(feature = "proj"))]
        {
            let show = |g: &Grid| g.crs().map_or("no CRS".to_string(), |c| c.to_string());
            return Err(scene_err(
                name,
                path,
                format!(
                    "CRS {} differs from the LST's {} (build with the `proj` feature to reproject, or reproject it first, e.g. with gdalwarp)",
                    show(r.grid()),
                    show(target)
                ),
            ));
        }
    }
    let out = resample(&r, target, method).map_err(|e| scene_err(name, path, e))?;
    if out.valid_count() == 0 {
        return Err(scene_err(
            name,
            path,
            "does not overlap the LST grid (empty overlap after resampling)",
        ));
    }
    Ok(out)
}

fn load(path: &Path) -> Result<Raster> {
    Ok(read_band(path, 1)?)
}

impl SceneInputs {
    /// Reads, derives and aligns every input into a [`Scene`].
    ///
    /// # Errors
    /// [`Error::Scene`] naming the file at fault: unreadable, all-nodata, not overlapping,
    /// CRS mismatch without `proj`; [`Error::Scene`] if no covariate can be formed.
    pub fn build(&self) -> Result<Scene> {
        let name = self.name.clone().unwrap_or_else(|| {
            self.lst
                .file_stem()
                .map_or("scene".into(), |s| s.to_string_lossy().into_owned())
        });
        if self.factor < 2 {
            return Err(Error::Scene {
                scene: name,
                detail: format!("factor must be at least 2, got {}", self.factor),
            });
        }
        let lst = load(&self.lst)?;
        if lst.valid_count() == 0 {
            return Err(scene_err(&name, &self.lst, "every pixel is nodata"));
        }
        let fine = lst.grid().refine(self.factor)?;
        let stack = self.covariate_stack(&name, &fine)?;
        let mut scene = Scene::new(name.clone(), lst, stack)?.with_time(self.month, self.hour);
        if let Some(p) = &self.reference {
            let r = load(p)?;
            scene = scene.with_reference(align(r, &fine, p, &name)?)?;
        }
        Ok(scene)
    }

    /// Reads, derives and aligns the covariates onto `fine` (the LST file is not read);
    /// `name` names the scene in errors.
    ///
    /// # Errors
    /// As [`SceneInputs::build`].
    pub(crate) fn covariate_stack(&self, name: &str, fine: &Grid) -> Result<Stack> {
        let name = name.to_string();
        let get = |p: &Option<PathBuf>| -> Result<Option<Raster>> {
            match p {
                Some(p) => {
                    let r = load(p)?;
                    if r.valid_count() == 0 {
                        return Err(scene_err(&name, p, "every pixel is nodata"));
                    }
                    Ok(Some(align(r, fine, p, &name)?))
                }
                None => Ok(None),
            }
        };
        let bands = |p: &Option<PathBuf>| -> Result<Option<Raster>> {
            match get(p)? {
                Some(r) => Ok(Some(self.band_scaling.apply(&r)?)),
                None => Ok(None),
            }
        };
        let (green, red, nir, swir) = (
            bands(&self.green)?,
            bands(&self.red)?,
            bands(&self.nir)?,
            bands(&self.swir)?,
        );
        type Index = fn(&Raster, &Raster) -> amun_indices::Result<Raster>;
        let derived =
            |given: Option<Raster>, f: Index, a: &Option<Raster>, b: &Option<Raster>| match (
                given, a, b,
            ) {
                (Some(r), _, _) => Ok::<_, Error>(Some(r)),
                (None, Some(a), Some(b)) => Ok(Some(f(a, b)?)),
                _ => Ok(None),
            };
        let ndvi_r = derived(get(&self.ndvi)?, ndvi, &nir, &red)?;
        let mndwi_r = derived(get(&self.mndwi)?, mndwi, &green, &swir)?;
        let ndbi_r = derived(get(&self.ndbi)?, ndbi, &swir, &nir)?;
        let landcover = match &self.landcover {
            Some(p) => {
                let r = landcover_raster(load(p)?).map_err(|e| scene_err(&name, p, e))?;
                Some(align(r, fine, p, &name)?)
            }
            None => None,
        };
        // DEM-derived terrain: slope/aspect are computed on the DEM's own grid, then aligned.
        let (mut slope, mut aspect, mut elevation) = (get(&self.slope)?, get(&self.aspect)?, None);
        if let Some(p) = &self.dem {
            let dem = load(p)?;
            if slope.is_none() || aspect.is_none() {
                let sa = slope_aspect(&dem, &SlopeParams::default())
                    .map_err(|e| scene_err(&name, p, e))?;
                if slope.is_none() {
                    slope = Some(align(sa.slope, fine, p, &name)?);
                }
                if aspect.is_none() {
                    aspect = Some(align(sa.aspect, fine, p, &name)?);
                }
            }
            if self.elevation_band {
                elevation = Some(align(dem, fine, p, &name)?);
            }
        }
        let mut cov = Covariates::new();
        for (which, r) in [
            (Covariate::Ndvi, ndvi_r),
            (Covariate::Landcover, landcover),
            (Covariate::Reflectance, get(&self.reflectance)?),
            (Covariate::Mndwi, mndwi_r),
            (Covariate::Ndbi, ndbi_r),
            (Covariate::Slope, slope),
            (Covariate::Aspect, aspect),
        ] {
            if let Some(r) = r {
                cov = cov.with(which, r);
            }
        }
        if let Some(e) = elevation {
            cov = cov.extra("elevation", e);
        }
        for (n, p) in &self.extra {
            if let Some(r) = get(&Some(p.clone()))? {
                cov = cov.extra(n.clone(), r);
            }
        }
        cov.build().map_err(|e| Error::Scene {
            scene: name.clone(),
            detail: format!("building covariates: {e}"),
        })
    }
}

//! Building a [`Scene`] from a user's files: align every input onto the fine grid.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use amun_indices::{
    landcover_raster, mndwi, ndbi, ndvi, slope_aspect, Covariate, Covariates, Reflectance,
    SlopeParams,
};
use amun_raster::{read_band, resample, BandKind, Grid, Raster, Resampling, Stack};

use crate::error::{Error, Result};
use crate::scene::{Resampled, Scene};

/// The files a scene is made from. Every covariate is optional; the model's covariate list
/// decides which are needed. Inputs on other grids are resampled onto the fine grid (average
/// when they are finer, bilinear when coarser; mode/nearest for land cover), whether or not
/// their pixels nest in the fine grid's; inputs in another CRS are reprojected with the
/// `proj` feature, refused without it. Each resampling is recorded
/// ([`Scene::resampled`], `scene.json`).
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
/// resampled; another CRS → reprojected (feature `proj`) or an error. What was done is
/// added to `log` under `input`.
fn align(
    r: Raster,
    target: &Grid,
    path: &Path,
    name: &str,
    input: &str,
    log: &RefCell<Vec<Resampled>>,
) -> Result<Raster> {
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
    let record = |reprojected: bool| Resampled {
        input: input.to_string(),
        file: path.to_path_buf(),
        grid: r.grid().to_string(),
        method,
        nested: r.grid().is_aligned_with(target),
        reprojected,
    };
    if r.grid().crs() != target.crs() {
        #[cfg(feature = "proj")]
        {
            let out = amun_raster::reproject(&r, target, method)
                .map_err(|e| scene_err(name, path, format!("reprojecting: {e}")))?;
            log.borrow_mut().push(record(true));
            return Ok(out);
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
    log.borrow_mut().push(record(false));
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
    /// CRS mismatch without `proj`; [`Error::Scene`] for a month outside 1–12 or an hour
    /// outside 0–23, or if no covariate can be formed.
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
        crate::scene::check_time(&name, self.month, self.hour)?;
        let log = RefCell::new(Vec::new());
        let lst = load(&self.lst)?;
        if lst.valid_count() == 0 {
            return Err(scene_err(&name, &self.lst, "every pixel is nodata"));
        }
        let fine = lst.grid().refine(self.factor)?;
        let stack = self.covariate_stack(&name, &fine, &log)?;
        let mut scene = Scene::new(name.clone(), lst, stack)?.with_time(self.month, self.hour)?;
        if let Some(p) = &self.reference {
            let r = load(p)?;
            scene = scene.with_reference(align(r, &fine, p, &name, "reference", &log)?)?;
        }
        Ok(scene.with_resampled(log.into_inner()))
    }

    /// Reads, derives and aligns the covariates onto `fine` (the LST file is not read),
    /// recording in `log` what was resampled; `name` names the scene in errors.
    ///
    /// # Errors
    /// As [`SceneInputs::build`].
    pub(crate) fn covariate_stack(
        &self,
        name: &str,
        fine: &Grid,
        log: &RefCell<Vec<Resampled>>,
    ) -> Result<Stack> {
        let name = name.to_string();
        let get = |p: &Option<PathBuf>, input: &str| -> Result<Option<Raster>> {
            match p {
                Some(p) => {
                    let r = load(p)?;
                    if r.valid_count() == 0 {
                        return Err(scene_err(&name, p, "every pixel is nodata"));
                    }
                    Ok(Some(align(r, fine, p, &name, input, log)?))
                }
                None => Ok(None),
            }
        };
        let bands = |p: &Option<PathBuf>, input: &str| -> Result<Option<Raster>> {
            match get(p, input)? {
                Some(r) => Ok(Some(self.band_scaling.apply(&r)?)),
                None => Ok(None),
            }
        };
        let (green, red, nir, swir) = (
            bands(&self.green, "green band")?,
            bands(&self.red, "red band")?,
            bands(&self.nir, "nir band")?,
            bands(&self.swir, "swir band")?,
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
        let ndvi_r = derived(get(&self.ndvi, "ndvi")?, ndvi, &nir, &red)?;
        let mndwi_r = derived(get(&self.mndwi, "mndwi")?, mndwi, &green, &swir)?;
        let ndbi_r = derived(get(&self.ndbi, "ndbi")?, ndbi, &swir, &nir)?;
        let landcover = match &self.landcover {
            Some(p) => {
                let r = landcover_raster(load(p)?).map_err(|e| scene_err(&name, p, e))?;
                Some(align(r, fine, p, &name, "landcover", log)?)
            }
            None => None,
        };
        // DEM-derived terrain: slope/aspect are computed on the DEM's own grid, then aligned.
        let (mut slope, mut aspect, mut elevation) = (
            get(&self.slope, "slope")?,
            get(&self.aspect, "aspect")?,
            None,
        );
        if let Some(p) = &self.dem {
            let dem = load(p)?;
            if slope.is_none() || aspect.is_none() {
                let sa = slope_aspect(&dem, &SlopeParams::default())
                    .map_err(|e| scene_err(&name, p, e))?;
                if slope.is_none() {
                    slope = Some(align(
                        sa.slope,
                        fine,
                        p,
                        &name,
                        "slope (from the DEM)",
                        log,
                    )?);
                }
                if aspect.is_none() {
                    aspect = Some(align(
                        sa.aspect,
                        fine,
                        p,
                        &name,
                        "aspect (from the DEM)",
                        log,
                    )?);
                }
            }
            if self.elevation_band {
                elevation = Some(align(dem, fine, p, &name, "elevation", log)?);
            }
        }
        let mut cov = Covariates::new();
        for (which, r) in [
            (Covariate::Ndvi, ndvi_r),
            (Covariate::Landcover, landcover),
            (
                Covariate::Reflectance,
                get(&self.reflectance, "reflectance")?,
            ),
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
            if let Some(r) = get(&Some(p.clone()), n)? {
                cov = cov.extra(n.clone(), r);
            }
        }
        cov.build().map_err(|e| Error::Scene {
            scene: name.clone(),
            detail: format!("building covariates: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use amun_raster::{write_raster, WriteOptions};

    use super::*;

    #[test]
    fn resampling_is_recorded_and_a_bad_month_refused_first() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, r: &Raster| {
            let p = dir.path().join(name);
            write_raster(&p, r, &WriteOptions::default()).unwrap();
            p
        };
        let coarse = Grid::geographic(10.0, 50.0, 0.1, 4, 4).unwrap();
        let lst = write("lst.tif", &Raster::filled(coarse, 290.0));
        // NDVI on the fine grid itself; slope on 0.03° pixels shifted by 0.005° (they do not
        // nest in the 0.02° fine grid's).
        let ndvi = write(
            "ndvi.tif",
            &Raster::filled(Grid::geographic(10.0, 50.0, 0.02, 20, 20).unwrap(), 0.5),
        );
        let slope = write(
            "slope.tif",
            &Raster::from_fn(
                Grid::geographic(9.995, 50.005, 0.03, 15, 15).unwrap(),
                |(r, c)| (r + c) as f32,
            ),
        );
        let inputs = SceneInputs {
            lst,
            factor: 5,
            month: Some(7),
            ndvi: Some(ndvi),
            slope: Some(slope.clone()),
            ..SceneInputs::default()
        };
        let scene = inputs.build().unwrap();
        let [r] = scene.resampled() else {
            panic!("{:?}", scene.resampled())
        };
        assert_eq!(
            (r.input.as_str(), &r.file, r.method, r.nested, r.reprojected),
            ("slope", &slope, Resampling::Bilinear, false, false)
        );
        assert!(r.to_string().contains("do not nest"), "{r}");
        let e = SceneInputs {
            month: Some(13),
            ..inputs
        }
        .build()
        .unwrap_err();
        assert!(e.to_string().contains("month 13"), "{e}");
    }
}

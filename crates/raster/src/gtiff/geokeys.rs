//! GeoTIFF georeferencing: the GeoKey directory and the model transform tags.
//!
//! Reading: EPSG codes for geographic and projected CRSs; user-defined CRSs for the common
//! cases (longlat, UTM, transverse Mercator, sinusoidal, Lambert azimuthal equal-area on a
//! named or explicit ellipsoid) become a PROJ string in a canonical form; an `ESRI PE
//! String` citation becomes WKT. `ModelPixelScale` + `ModelTiepoint` and
//! `ModelTransformation` give the geotransform; `PixelIsPoint` shifts it by half a pixel
//! as GDAL does.
//!
//! Writing is the inverse for the same set.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::grid::Crs;

use super::layout::RawTags;

// GeoKey ids (GeoTIFF 1.1, OGC 19-008r4, section 7).
const GT_MODEL_TYPE: u16 = 1024;
const GT_RASTER_TYPE: u16 = 1025;
const GT_CITATION: u16 = 1026;
const GEOGRAPHIC_TYPE: u16 = 2048;
const GEOG_CITATION: u16 = 2049;
const GEOG_DATUM: u16 = 2050;
const GEOG_ANGULAR_UNITS: u16 = 2054;
const GEOG_ELLIPSOID: u16 = 2056;
const GEOG_SEMI_MAJOR: u16 = 2057;
const GEOG_SEMI_MINOR: u16 = 2058;
const GEOG_INV_FLATTENING: u16 = 2059;
const PROJECTED_TYPE: u16 = 3072;
const PCS_CITATION: u16 = 3073;
const PROJECTION: u16 = 3074;
const PROJ_COORD_TRANS: u16 = 3075;
const PROJ_LINEAR_UNITS: u16 = 3076;
const PROJ_NAT_ORIGIN_LONG: u16 = 3080;
const PROJ_NAT_ORIGIN_LAT: u16 = 3081;
const PROJ_FALSE_EASTING: u16 = 3082;
const PROJ_FALSE_NORTHING: u16 = 3083;
const PROJ_CENTER_LONG: u16 = 3088;
const PROJ_CENTER_LAT: u16 = 3089;
const PROJ_SCALE_AT_NAT_ORIGIN: u16 = 3092;

const USER_DEFINED: u16 = 32767;
const CT_TRANSVERSE_MERCATOR: u16 = 1;
const CT_LAEA: u16 = 10;
const CT_SINUSOIDAL: u16 = 24;
const ESRI_PE: &str = "ESRI PE String = ";

/// Named ellipsoids: EPSG code, PROJ name, semi-major axis, inverse flattening.
const ELLIPSOIDS: [(u16, &str, f64, f64); 5] = [
    (7030, "WGS84", 6378137.0, 298.257223563),
    (7019, "GRS80", 6378137.0, 298.257222101),
    (7022, "intl", 6378388.0, 297.0),
    (7008, "clrk66", 6378206.4, 294.978_698_213_898),
    (7043, "WGS72", 6378135.0, 298.26),
];

#[derive(Debug, Clone, PartialEq)]
enum KeyValue {
    Short(u16),
    Doubles(Vec<f64>),
    Ascii(String),
}

/// The georeferencing found in a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GeoInfo {
    /// GDAL's six coefficients (PixelIsPoint already shifted), if any transform is present.
    pub gdal_transform: Option<[f64; 6]>,
    pub crs: Option<Crs>,
    pub pixel_is_point: bool,
    /// Why a CRS present in the file was not understood.
    pub crs_note: Option<String>,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        what: "GeoKey directory",
        index: 0,
        detail: detail.into(),
    }
}

fn parse_keys(tags: &RawTags, path: &Path) -> Result<BTreeMap<u16, KeyValue>> {
    let mut keys = BTreeMap::new();
    let Some(dir) = &tags.geokeys else {
        return Ok(keys);
    };
    let n = match dir.get(..4) {
        Some(h) => usize::from(h[3]),
        None => return Err(corrupt(path, "shorter than its 4-value header")),
    };
    let entries = dir.get(4..4 + 4 * n).ok_or_else(|| {
        corrupt(
            path,
            format!("{n} keys announced, {} values present", dir.len()),
        )
    })?;
    for e in entries.chunks_exact(4) {
        let (id, loc, count, value) = (e[0], e[1], usize::from(e[2]), usize::from(e[3]));
        let v = match loc {
            0 => KeyValue::Short(e[3]),
            34736 => {
                let d = tags
                    .geo_doubles
                    .as_deref()
                    .and_then(|d| d.get(value..value.checked_add(count)?))
                    .ok_or_else(|| corrupt(path, format!("key {id}: doubles out of range")))?;
                KeyValue::Doubles(d.to_vec())
            }
            34737 => {
                let a = tags
                    .geo_ascii
                    .as_deref()
                    .and_then(|a| a.get(value..value.checked_add(count)?))
                    .ok_or_else(|| corrupt(path, format!("key {id}: ASCII out of range")))?;
                KeyValue::Ascii(a.trim_end_matches(['|', '\0']).to_string())
            }
            // A short array stored in the directory itself: take the first value.
            34735 => match dir.get(value) {
                Some(&s) => KeyValue::Short(s),
                None => return Err(corrupt(path, format!("key {id}: short out of range"))),
            },
            _ => continue,
        };
        keys.insert(id, v);
    }
    Ok(keys)
}

fn short(keys: &BTreeMap<u16, KeyValue>, id: u16) -> Option<u16> {
    match keys.get(&id) {
        Some(KeyValue::Short(s)) => Some(*s),
        _ => None,
    }
}

fn double(keys: &BTreeMap<u16, KeyValue>, ids: &[u16]) -> Option<f64> {
    ids.iter().find_map(|id| match keys.get(id) {
        Some(KeyValue::Doubles(d)) => d.first().copied(),
        _ => None,
    })
}

fn ascii(keys: &BTreeMap<u16, KeyValue>, id: u16) -> Option<&str> {
    match keys.get(&id) {
        Some(KeyValue::Ascii(s)) => Some(s),
        _ => None,
    }
}

/// Interprets the georeferencing tags.
pub(crate) fn georeference(tags: &RawTags, path: &Path) -> Result<GeoInfo> {
    let keys = parse_keys(tags, path)?;
    let pixel_is_point = short(&keys, GT_RASTER_TYPE) == Some(2);
    let mut info = GeoInfo {
        pixel_is_point,
        ..GeoInfo::default()
    };
    info.gdal_transform = transform(tags, path)?;
    if pixel_is_point {
        if let Some(gt) = &mut info.gdal_transform {
            // GDAL: the tiepoint is a pixel centre; move to the corner of pixel (0, 0).
            gt[0] -= 0.5 * (gt[1] + gt[2]);
            gt[3] -= 0.5 * (gt[4] + gt[5]);
        }
    }
    match crs_from_keys(&keys) {
        Ok(crs) => info.crs = crs,
        Err(note) => info.crs_note = Some(note),
    }
    Ok(info)
}

fn transform(tags: &RawTags, path: &Path) -> Result<Option<[f64; 6]>> {
    let bad = |detail: String| Error::Corrupt {
        path: path.to_path_buf(),
        what: "georeferencing tag",
        index: 0,
        detail,
    };
    if let Some(m) = &tags.transformation {
        if m.len() < 16 {
            return Err(bad(format!(
                "ModelTransformation has {} values, not 16",
                m.len()
            )));
        }
        return Ok(Some([m[3], m[0], m[1], m[7], m[4], m[5]]));
    }
    match (&tags.tiepoints, &tags.pixel_scale) {
        (Some(tp), Some(sc)) => {
            if tp.len() < 6 || sc.len() < 2 {
                return Err(bad(format!(
                    "ModelTiepoint has {} values, ModelPixelScale {}",
                    tp.len(),
                    sc.len()
                )));
            }
            let (i, j, x, y) = (tp[0], tp[1], tp[3], tp[4]);
            let (sx, sy) = (sc[0], sc[1]);
            Ok(Some([x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy]))
        }
        _ => Ok(None),
    }
}

fn fmt_num(v: f64) -> String {
    // `Display` for f64 prints the shortest string that reads back to the same value.
    format!("{v}")
}

fn ellipsoid_string(keys: &BTreeMap<u16, KeyValue>) -> Result<String, String> {
    let geog = short(keys, GEOGRAPHIC_TYPE).filter(|&c| c != USER_DEFINED && c != 0);
    if let Some(code) = geog {
        return Ok(match code {
            4326 => "+datum=WGS84".into(),
            4269 => "+datum=NAD83".into(),
            4267 => "+datum=NAD27".into(),
            4258 | 4674 | 4283 | 4619 | 4617 => "+ellps=GRS80".into(),
            4230 | 4022 => "+ellps=intl".into(),
            4322 => "+ellps=WGS72".into(),
            other => {
                return Err(format!(
                    "geographic CRS EPSG:{other} inside a user-defined CRS"
                ))
            }
        });
    }
    match short(keys, GEOG_DATUM) {
        Some(6326) => return Ok("+datum=WGS84".into()),
        Some(6269) => return Ok("+datum=NAD83".into()),
        _ => {}
    }
    if let Some(code) = short(keys, GEOG_ELLIPSOID).filter(|&c| c != USER_DEFINED) {
        if let Some((_, name, _, _)) = ELLIPSOIDS.iter().find(|e| e.0 == code) {
            return Ok(format!("+ellps={name}"));
        }
        return Err(format!("ellipsoid EPSG:{code}"));
    }
    let a = double(keys, &[GEOG_SEMI_MAJOR]).ok_or("no ellipsoid in the GeoKeys")?;
    let rf = double(keys, &[GEOG_INV_FLATTENING]);
    let b = double(keys, &[GEOG_SEMI_MINOR]);
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1.0);
    match (rf, b) {
        (Some(rf), _) if rf != 0.0 => {
            if let Some((_, name, _, _)) =
                ELLIPSOIDS.iter().find(|e| close(e.2, a) && close(e.3, rf))
            {
                Ok(format!("+ellps={name}"))
            } else {
                Ok(format!("+a={} +rf={}", fmt_num(a), fmt_num(rf)))
            }
        }
        (_, Some(b)) if !close(b, a) => Ok(format!("+a={} +b={}", fmt_num(a), fmt_num(b))),
        _ => Ok(format!("+R={}", fmt_num(a))),
    }
}

/// The CRS of the keys: `Ok(None)` if there are none, `Err(note)` if they are not understood.
fn crs_from_keys(keys: &BTreeMap<u16, KeyValue>) -> Result<Option<Crs>, String> {
    if keys.is_empty() {
        return Ok(None);
    }
    for id in [PCS_CITATION, GT_CITATION, GEOG_CITATION] {
        if let Some(wkt) = ascii(keys, id).and_then(|c| c.strip_prefix(ESRI_PE)) {
            return Ok(Some(Crs::Wkt(wkt.to_string())));
        }
    }
    let model = short(keys, GT_MODEL_TYPE);
    match model {
        Some(2) => {
            if let Some(code) =
                short(keys, GEOGRAPHIC_TYPE).filter(|&c| c != USER_DEFINED && c != 0)
            {
                return Ok(Some(Crs::Epsg(u32::from(code))));
            }
            let ell = ellipsoid_string(keys)?;
            Ok(Some(Crs::Proj(format!("+proj=longlat {ell} +no_defs"))))
        }
        Some(1) => {
            if let Some(code) = short(keys, PROJECTED_TYPE).filter(|&c| c != USER_DEFINED && c != 0)
            {
                return Ok(Some(Crs::Epsg(u32::from(code))));
            }
            if let Some(u) = short(keys, PROJ_LINEAR_UNITS).filter(|&u| u != 9001) {
                return Err(format!("linear unit EPSG:{u} (only metres are supported)"));
            }
            let ell = ellipsoid_string(keys)?;
            let d = |ids: &[u16], default: f64| double(keys, ids).unwrap_or(default);
            let fe = d(&[PROJ_FALSE_EASTING, 3086], 0.0);
            let fn_ = d(&[PROJ_FALSE_NORTHING, 3087], 0.0);
            let proj = short(keys, PROJECTION);
            let body = match (proj, short(keys, PROJ_COORD_TRANS)) {
                (Some(p @ 16001..=16060), _) => format!("+proj=utm +zone={}", p - 16000),
                (Some(p @ 16101..=16160), _) => format!("+proj=utm +zone={} +south", p - 16100),
                (_, Some(CT_TRANSVERSE_MERCATOR)) => {
                    let lon0 = d(&[PROJ_NAT_ORIGIN_LONG, PROJ_CENTER_LONG], 0.0);
                    let lat0 = d(&[PROJ_NAT_ORIGIN_LAT, PROJ_CENTER_LAT], 0.0);
                    let k = d(&[PROJ_SCALE_AT_NAT_ORIGIN, 3093], 1.0);
                    let zone = (lon0 + 183.0) / 6.0;
                    let is_utm = (k - 0.9996).abs() < 1e-12
                        && lat0.abs() < 1e-12
                        && (fe - 500000.0).abs() < 1e-6
                        && (fn_.abs() < 1e-6 || (fn_ - 1e7).abs() < 1e-6)
                        && (zone - zone.round()).abs() < 1e-9
                        && (1.0..=60.0).contains(&zone.round());
                    if is_utm {
                        let south = if fn_ > 0.0 { " +south" } else { "" };
                        return Ok(Some(Crs::Proj(format!(
                            "+proj=utm +zone={}{south} {ell} +units=m +no_defs",
                            zone.round() as i32
                        ))));
                    }
                    format!(
                        "+proj=tmerc +lat_0={} +lon_0={} +k={} +x_0={} +y_0={}",
                        fmt_num(lat0),
                        fmt_num(lon0),
                        fmt_num(k),
                        fmt_num(fe),
                        fmt_num(fn_)
                    )
                }
                (_, Some(CT_SINUSOIDAL)) => format!(
                    "+proj=sinu +lon_0={} +x_0={} +y_0={}",
                    fmt_num(d(&[PROJ_CENTER_LONG, PROJ_NAT_ORIGIN_LONG], 0.0)),
                    fmt_num(fe),
                    fmt_num(fn_)
                ),
                (_, Some(CT_LAEA)) => format!(
                    "+proj=laea +lat_0={} +lon_0={} +x_0={} +y_0={}",
                    fmt_num(d(&[PROJ_CENTER_LAT, PROJ_NAT_ORIGIN_LAT], 0.0)),
                    fmt_num(d(&[PROJ_CENTER_LONG, PROJ_NAT_ORIGIN_LONG], 0.0)),
                    fmt_num(fe),
                    fmt_num(fn_)
                ),
                (p, ct) => {
                    return Err(format!(
                        "user-defined projection (ProjectionGeoKey {p:?}, coordinate transformation {ct:?})"
                    ))
                }
            };
            Ok(Some(Crs::Proj(format!("{body} {ell} +units=m +no_defs"))))
        }
        Some(other) => Err(format!("model type {other}")),
        None => Ok(None),
    }
}

/// GeoKeys, their double and ASCII parameters, ready to be written.
#[derive(Debug, Default)]
pub(crate) struct EncodedKeys {
    pub directory: Vec<u16>,
    pub doubles: Vec<f64>,
    pub ascii: String,
}

#[derive(Default)]
struct KeyWriter {
    keys: BTreeMap<u16, (u16, u16, u16)>,
    doubles: Vec<f64>,
    ascii: String,
}

impl KeyWriter {
    fn short(&mut self, id: u16, v: u16) {
        self.keys.insert(id, (0, 1, v));
    }
    fn double(&mut self, id: u16, v: f64) {
        let at = self.doubles.len() as u16;
        self.doubles.push(v);
        self.keys.insert(id, (34736, 1, at));
    }
    fn ascii(&mut self, id: u16, s: &str) -> Option<()> {
        let at = u16::try_from(self.ascii.len()).ok()?;
        self.ascii.push_str(s);
        self.ascii.push('|');
        let n = u16::try_from(s.len() + 1).ok()?;
        self.keys.insert(id, (34737, n, at));
        Some(())
    }
    fn finish(self) -> EncodedKeys {
        let mut directory = vec![1, 1, 0, self.keys.len() as u16];
        for (id, (loc, count, v)) in self.keys {
            directory.extend([id, loc, count, v]);
        }
        EncodedKeys {
            directory,
            doubles: self.doubles,
            ascii: self.ascii,
        }
    }
}

/// Parses `+key=value` / `+flag` tokens of a PROJ string.
fn proj_params(s: &str) -> BTreeMap<String, String> {
    s.split_whitespace()
        .filter_map(|t| t.strip_prefix('+'))
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (t.to_string(), String::new()),
        })
        .collect()
}

fn write_ellipsoid(w: &mut KeyWriter, p: &BTreeMap<String, String>) -> Result<(), String> {
    let num = |k: &str| -> Result<Option<f64>, String> {
        p.get(k)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| format!("+{k}={v} is not a number"))
            })
            .transpose()
    };
    w.short(GEOG_ANGULAR_UNITS, 9102);
    if let Some(d) = p.get("datum") {
        let code = match d.as_str() {
            "WGS84" => 4326,
            "NAD83" => 4269,
            "NAD27" => 4267,
            other => return Err(format!("datum {other}")),
        };
        w.short(GEOGRAPHIC_TYPE, code);
        return Ok(());
    }
    w.short(GEOGRAPHIC_TYPE, USER_DEFINED);
    w.short(GEOG_DATUM, USER_DEFINED);
    if let Some(e) = p.get("ellps") {
        let Some((code, _, _, _)) = ELLIPSOIDS.iter().find(|x| x.1 == e) else {
            return Err(format!("ellipsoid {e}"));
        };
        w.short(GEOG_ELLIPSOID, *code);
        return Ok(());
    }
    w.short(GEOG_ELLIPSOID, USER_DEFINED);
    if let Some(r) = num("R")? {
        w.double(GEOG_SEMI_MAJOR, r);
        w.double(GEOG_SEMI_MINOR, r);
    } else if let Some(a) = num("a")? {
        w.double(GEOG_SEMI_MAJOR, a);
        match (num("rf")?, num("b")?) {
            (Some(rf), _) => w.double(GEOG_INV_FLATTENING, rf),
            (None, Some(b)) => w.double(GEOG_SEMI_MINOR, b),
            (None, None) => w.double(GEOG_SEMI_MINOR, a),
        }
    } else {
        return Err("no datum, ellipsoid or radius".into());
    }
    Ok(())
}

/// GeoKeys for a CRS (PixelIsArea). `Err` says why the CRS cannot be written.
pub(crate) fn encode_crs(crs: Option<&Crs>) -> Result<Option<EncodedKeys>, String> {
    let Some(crs) = crs else { return Ok(None) };
    let mut w = KeyWriter::default();
    w.short(GT_RASTER_TYPE, 1);
    match crs {
        Crs::Epsg(code) => {
            let code =
                u16::try_from(*code).map_err(|_| format!("EPSG:{code} does not fit a GeoKey"))?;
            if crs.is_geographic() == Some(true) {
                w.short(GT_MODEL_TYPE, 2);
                w.short(GEOGRAPHIC_TYPE, code);
                w.short(GEOG_ANGULAR_UNITS, 9102);
            } else {
                w.short(GT_MODEL_TYPE, 1);
                w.short(PROJECTED_TYPE, code);
            }
        }
        Crs::Wkt(wkt) => {
            w.short(
                GT_MODEL_TYPE,
                if crs.is_geographic() == Some(true) {
                    2
                } else {
                    1
                },
            );
            w.ascii(GT_CITATION, &format!("{ESRI_PE}{wkt}"))
                .ok_or("WKT longer than a GeoKey can hold")?;
        }
        Crs::Proj(s) => {
            let p = proj_params(s);
            if let Some(u) = p.get("units").filter(|u| u.as_str() != "m") {
                return Err(format!("units {u} (only metres are supported)"));
            }
            let num = |k: &str, default: f64| -> Result<f64, String> {
                p.get(k).map_or(Ok(default), |v| {
                    v.parse().map_err(|_| format!("+{k}={v} is not a number"))
                })
            };
            let proj = p.get("proj").map(String::as_str).unwrap_or("");
            if matches!(proj, "longlat" | "latlong" | "lonlat" | "latlon") {
                w.short(GT_MODEL_TYPE, 2);
                write_ellipsoid(&mut w, &p)?;
                return Ok(Some(w.finish()));
            }
            w.short(GT_MODEL_TYPE, 1);
            w.short(PROJECTED_TYPE, USER_DEFINED);
            w.short(PROJ_LINEAR_UNITS, 9001);
            write_ellipsoid(&mut w, &p)?;
            match proj {
                "utm" => {
                    let zone: u16 = p
                        .get("zone")
                        .and_then(|z| z.parse().ok())
                        .filter(|z| (1..=60).contains(z))
                        .ok_or("UTM without a zone in 1..=60")?;
                    let south = p.contains_key("south");
                    w.short(PROJECTION, USER_DEFINED);
                    w.short(PROJ_COORD_TRANS, CT_TRANSVERSE_MERCATOR);
                    w.double(PROJ_NAT_ORIGIN_LAT, 0.0);
                    w.double(PROJ_NAT_ORIGIN_LONG, f64::from(zone) * 6.0 - 183.0);
                    w.double(PROJ_SCALE_AT_NAT_ORIGIN, 0.9996);
                    w.double(PROJ_FALSE_EASTING, 500000.0);
                    w.double(PROJ_FALSE_NORTHING, if south { 1e7 } else { 0.0 });
                }
                "tmerc" => {
                    w.short(PROJECTION, USER_DEFINED);
                    w.short(PROJ_COORD_TRANS, CT_TRANSVERSE_MERCATOR);
                    w.double(PROJ_NAT_ORIGIN_LAT, num("lat_0", 0.0)?);
                    w.double(PROJ_NAT_ORIGIN_LONG, num("lon_0", 0.0)?);
                    w.double(PROJ_SCALE_AT_NAT_ORIGIN, num("k", num("k_0", 1.0)?)?);
                    w.double(PROJ_FALSE_EASTING, num("x_0", 0.0)?);
                    w.double(PROJ_FALSE_NORTHING, num("y_0", 0.0)?);
                }
                "sinu" => {
                    w.short(PROJECTION, USER_DEFINED);
                    w.short(PROJ_COORD_TRANS, CT_SINUSOIDAL);
                    w.double(PROJ_CENTER_LONG, num("lon_0", 0.0)?);
                    w.double(PROJ_FALSE_EASTING, num("x_0", 0.0)?);
                    w.double(PROJ_FALSE_NORTHING, num("y_0", 0.0)?);
                }
                "laea" => {
                    w.short(PROJECTION, USER_DEFINED);
                    w.short(PROJ_COORD_TRANS, CT_LAEA);
                    w.double(PROJ_CENTER_LAT, num("lat_0", 0.0)?);
                    w.double(PROJ_CENTER_LONG, num("lon_0", 0.0)?);
                    w.double(PROJ_FALSE_EASTING, num("x_0", 0.0)?);
                    w.double(PROJ_FALSE_NORTHING, num("y_0", 0.0)?);
                }
                other => return Err(format!("projection +proj={other}")),
            }
        }
    }
    Ok(Some(w.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(crs: &Crs) -> Option<Crs> {
        let k = encode_crs(Some(crs)).unwrap().unwrap();
        let tags = RawTags {
            geokeys: Some(k.directory),
            geo_doubles: Some(k.doubles),
            geo_ascii: Some(k.ascii),
            ..RawTags::default()
        };
        georeference(&tags, Path::new("t")).unwrap().crs
    }

    #[test]
    fn crs_round_trips_through_geokeys() {
        for crs in [
            Crs::Epsg(4326),
            Crs::Epsg(32633),
            Crs::Epsg(31985),
            Crs::modis_sinusoidal(),
            Crs::Proj("+proj=utm +zone=25 +south +ellps=GRS80 +units=m +no_defs".into()),
            Crs::Proj("+proj=longlat +ellps=GRS80 +no_defs".into()),
            Crs::Proj(
                "+proj=laea +lat_0=52 +lon_0=10 +x_0=4321000 +y_0=3210000 +ellps=GRS80 +units=m +no_defs"
                    .into(),
            ),
            Crs::Proj(
                "+proj=tmerc +lat_0=49 +lon_0=-2 +k=0.9996012717 +x_0=400000 +y_0=-100000 +a=6377563.396 +rf=299.3249646 +units=m +no_defs"
                    .into(),
            ),
        ] {
            assert_eq!(round_trip(&crs).as_ref(), Some(&crs));
        }
        // Geographic WGS 84 is written with its EPSG code, so it reads back as one.
        let ll = Crs::Proj("+proj=longlat +datum=WGS84 +no_defs".into());
        assert_eq!(round_trip(&ll), Some(Crs::Epsg(4326)));
    }

    #[test]
    fn unknown_projection_is_refused_on_write() {
        let e = encode_crs(Some(&Crs::Proj("+proj=robin +datum=WGS84".into()))).unwrap_err();
        assert!(e.contains("robin"), "{e}");
    }

    #[test]
    fn pixel_is_point_shifts_half_a_pixel() {
        // GeoTIFF spec / GDAL: with RasterPixelIsPoint the tiepoint is a pixel centre.
        let tags = RawTags {
            geokeys: Some(vec![1, 1, 0, 2, 1024, 0, 1, 2, 1025, 0, 1, 2]),
            tiepoints: Some(vec![0.0, 0.0, 0.0, 10.0, 50.0, 0.0]),
            pixel_scale: Some(vec![0.1, 0.1, 0.0]),
            ..RawTags::default()
        };
        let g = georeference(&tags, Path::new("t")).unwrap();
        assert!(g.pixel_is_point);
        let gt = g.gdal_transform.unwrap();
        assert!(
            (gt[0] - 9.95).abs() < 1e-12 && (gt[3] - 50.05).abs() < 1e-12,
            "{gt:?}"
        );
    }

    #[test]
    fn broken_directory_is_an_error() {
        let tags = RawTags {
            geokeys: Some(vec![1, 1, 0, 5, 1024, 0, 1, 2]),
            ..RawTags::default()
        };
        assert!(matches!(
            georeference(&tags, Path::new("t")),
            Err(Error::Corrupt { .. })
        ));
    }
}

//! The physical model's constants and closed-form pieces: sun position, base temperature,
//! phenology and class spectra. Every formula is documented in the crate README.

use amun_indices::Igbp;

/// Mid-month day of year for months 1–12.
pub(crate) const MID_MONTH_DOY: [f64; 12] = [
    15.0, 46.0, 74.0, 105.0, 135.0, 166.0, 196.0, 227.0, 258.0, 288.0, 319.0, 349.0,
];

/// Annual mean LST at the equator, sea level (K).
pub const T_EQUATOR_K: f64 = 302.0;
/// Decrease of the annual mean LST per degree of latitude (K/°).
pub const T_LAT_K_PER_DEG: f64 = 0.5;
/// Seasonal LST amplitude per degree of latitude (K/°).
pub const SEASON_K_PER_DEG: f64 = 0.4;
/// Day of year of the seasonal LST maximum in the northern hemisphere (mid-July).
pub const SEASON_PEAK_DOY: f64 = 200.0;
/// Diurnal LST amplitude per unit of `sin(sun elevation)` (K).
pub const DIURNAL_K: f64 = 18.0;
/// Solar heating of a slope per unit change of `cos(incidence)`, for a black surface (K).
pub const SLOPE_SOLAR_K: f64 = 15.0;
/// Albedo cooling per unit albedo above the reference, at the zenith sun (K).
pub const ALBEDO_K: f64 = 30.0;
/// Reference albedo of the base temperature (a grass surface).
pub const ALBEDO_REF: f64 = 0.15;
/// Daytime evapotranspiration cooling per unit NDVI at the zenith sun (K).
pub const VEG_DAY_K: f64 = 10.0;
/// Night-time warming per unit NDVI (canopy sheltering) (K).
pub const VEG_NIGHT_K: f64 = 1.5;
/// Daytime evaporative cooling of moist soil per unit moisture at the zenith sun (K).
pub const MOIST_DAY_K: f64 = 3.0;
/// Urban heat at night, fully built-up neighbourhood (K).
pub const URBAN_NIGHT_K: f64 = 2.5;
/// Extra urban heat per unit `sin(sun elevation)` by day (K).
pub const URBAN_DAY_K: f64 = 3.5;
/// Radius of the urban-density box (km).
pub const URBAN_RADIUS_KM: f64 = 1.5;
/// Cold-air pooling in a valley `POOL_DEPTH_M` or more below its surroundings (K).
pub const POOL_K: f64 = 5.0;
/// Depth below the surrounding mean at which cold-air pooling saturates (m).
pub const POOL_DEPTH_M: f64 = 100.0;
/// Radius of the topographic-position box for pooling (km).
pub const POOL_RADIUS_KM: f64 = 5.0;
/// Share of the land seasonal amplitude that water keeps.
pub const WATER_SEASON: f64 = 0.6;
/// Lag of the water seasonal cycle behind land (days).
pub const WATER_LAG_DAYS: f64 = 30.0;
/// Share of the land diurnal amplitude that water keeps.
pub const WATER_DIURNAL: f64 = 0.15;
/// Upper limit of snow and ice surface temperature (K).
pub const MELT_K: f64 = 273.15;
/// Kilometres per degree of latitude used to convert km-radii to pixels.
pub const KM_PER_DEG: f64 = 111.32;

/// Solar declination in degrees (Cooper 1969): `23.44·sin(2π(284 + doy)/365)`.
pub(crate) fn declination_deg(doy: f64) -> f64 {
    23.44 * (std::f64::consts::TAU * (284.0 + doy) / 365.0).sin()
}

/// Sun position for latitude `lat` (deg), day of year and local solar hour:
/// `(sin(elevation), azimuth in degrees clockwise from north)`.
///
/// `sin e = sin φ sin δ + cos φ cos δ cos ω`, hour angle `ω = 15°·(h − 12)`;
/// azimuth `A = atan2(−cos δ sin ω · cos φ, sin δ − sin e sin φ)`.
pub(crate) fn sun(lat: f64, doy: f64, hour: f64) -> (f64, f64) {
    let (phi, delta) = (lat.to_radians(), declination_deg(doy).to_radians());
    let omega = (15.0 * (hour - 12.0)).to_radians();
    let sin_e = phi.sin() * delta.sin() + phi.cos() * delta.cos() * omega.cos();
    let az = (-delta.cos() * omega.sin() * phi.cos())
        .atan2(delta.sin() - sin_e * phi.sin())
        .to_degrees();
    (sin_e, az.rem_euclid(360.0))
}

/// Mean over the 24 whole hours of `max(0, sin e)`: the diurnal term's daily mean.
pub(crate) fn mean_daylight(lat: f64, doy: f64) -> f64 {
    (0..24)
        .map(|h| sun(lat, doy, f64::from(h)).0.max(0.0))
        .sum::<f64>()
        / 24.0
}

/// Seasonal phase `cos(2π(doy − peak)/365)`, the peak moved half a year south of the
/// equator.
fn seasonal_phase(lat: f64, doy: f64, peak: f64) -> f64 {
    let peak = if lat >= 0.0 { peak } else { peak + 182.5 };
    (std::f64::consts::TAU * (doy - peak) / 365.0).cos()
}

/// Base LST of a flat, sea-level reference surface (K) without its diurnal term:
/// `T_eq − 0.5·|φ| + 0.4·|φ|·cos(2π(doy − 200)/365)`.
pub(crate) fn base_seasonal(lat: f64, doy: f64, lag_days: f64, season_share: f64) -> f64 {
    T_EQUATOR_K - T_LAT_K_PER_DEG * lat.abs()
        + season_share
            * SEASON_K_PER_DEG
            * lat.abs()
            * seasonal_phase(lat, doy - lag_days, SEASON_PEAK_DOY)
}

/// Greenness (0–1) of natural vegetation: `1 − a·(1 + cos(2π(doy − 15)/365))/2`, the
/// amplitude `a = min(1, |φ|/25)` so the tropics stay green.
pub(crate) fn greenness_natural(lat: f64, doy: f64) -> f64 {
    let a = (lat.abs() / 25.0).min(1.0);
    1.0 - a * 0.5 * (1.0 + seasonal_phase(lat, doy, 15.0))
}

/// Greenness (0–1) of crops: `sin(π(doy − 100)/150)` during the 150-day season from
/// day 100 (southern hemisphere: half a year later), 0 outside it.
pub(crate) fn greenness_crop(lat: f64, doy: f64) -> f64 {
    let sow = if lat >= 0.0 { 100.0 } else { 282.5 };
    let t = (doy - sow).rem_euclid(365.0);
    if t <= 150.0 {
        (std::f64::consts::PI * t / 150.0).sin()
    } else {
        0.0
    }
}

/// Reflectance (green, red, NIR, SWIR) of a class when dormant and at peak greenness.
pub(crate) fn spectra(class: Igbp) -> ([f64; 4], [f64; 4]) {
    match class {
        Igbp::Water => ([0.06, 0.04, 0.02, 0.01], [0.06, 0.04, 0.02, 0.01]),
        Igbp::SnowIce => ([0.80, 0.78, 0.70, 0.08], [0.80, 0.78, 0.70, 0.08]),
        Igbp::Barren => ([0.12, 0.18, 0.24, 0.32], [0.12, 0.18, 0.24, 0.32]),
        Igbp::UrbanBuiltUp => ([0.10, 0.12, 0.16, 0.25], [0.09, 0.10, 0.19, 0.24]),
        Igbp::Cropland => ([0.09, 0.13, 0.20, 0.28], [0.07, 0.04, 0.42, 0.18]),
        Igbp::Grassland => ([0.08, 0.11, 0.21, 0.26], [0.07, 0.05, 0.32, 0.20]),
        // Forests and anything else: a mixed forest.
        _ => ([0.06, 0.06, 0.22, 0.16], [0.05, 0.03, 0.38, 0.15]),
    }
}

/// Greenness of a class in a month (0–1).
pub(crate) fn class_greenness(class: Igbp, lat: f64, doy: f64) -> f64 {
    match class {
        Igbp::Water | Igbp::SnowIce | Igbp::Barren => 0.0,
        Igbp::Cropland => greenness_crop(lat, doy),
        Igbp::UrbanBuiltUp => 0.5 * greenness_natural(lat, doy),
        Igbp::Grassland => greenness_natural(lat, doy),
        // Forests keep part of their leaves.
        _ => 0.4 + 0.6 * greenness_natural(lat, doy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sun_position_matches_textbook_cases() {
        // Equinox (declination ≈ 0 near doy 80), equator, noon: sun at the zenith.
        let doy = 81.0;
        assert!(declination_deg(doy).abs() < 0.5);
        let (s, _) = sun(0.0, doy, 12.0);
        assert!((s - 1.0).abs() < 1e-3, "{s}");
        // June solstice (doy 172, δ = 23.44°) at 34° N, noon: e = 90 − 34 + 23.44 = 79.44°,
        // sun due south (azimuth 180).
        let (s, az) = sun(34.0, 172.0, 12.0);
        assert!((s.asin().to_degrees() - 79.44).abs() < 0.05);
        assert!((az - 180.0).abs() < 1e-6);
        // Morning sun in the east half, afternoon in the west half.
        assert!((0.0..180.0).contains(&sun(34.0, 172.0, 8.0).1));
        assert!((180.0..360.0).contains(&sun(34.0, 172.0, 16.0).1));
        // Midnight: below the horizon.
        assert!(sun(34.0, 172.0, 0.0).0 < 0.0);
    }

    #[test]
    fn seasons_flip_across_the_equator() {
        let north_july = base_seasonal(40.0, 196.0, 0.0, 1.0);
        let north_jan = base_seasonal(40.0, 15.0, 0.0, 1.0);
        let south_july = base_seasonal(-40.0, 196.0, 0.0, 1.0);
        assert!(north_july > north_jan + 25.0);
        assert!(south_july < north_jan + 1.0);
        assert!(greenness_natural(40.0, 196.0) > 0.9 && greenness_natural(40.0, 15.0) < 0.1);
        assert!(greenness_crop(40.0, 175.0) > 0.99 && greenness_crop(40.0, 300.0) < 1e-12);
    }
}

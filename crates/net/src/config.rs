//! The network's configuration: inputs, widths and the module switches of the ablations.

use amun_indices::{Igbp, LandcoverEncoding};
pub use amun_prior::Base;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the aspect band (an angle in degrees clockwise from north, as `gdaldem aspect`
/// writes it) is fed to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AspectEncoding {
    /// Two channels: northness `cos(aspect)` and eastness `sin(aspect)` (default). 359° and
    /// 1° are neighbours, as they should be; flips and rotations act on them linearly.
    #[default]
    CosSin,
    /// The angle in degrees as one channel (the paper's reading; 359° and 1° look far apart).
    Degrees,
}

/// Which of the paper's modules are present (its "reliability experiment").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ablation {
    /// GMFCA only: shallow features + GMFCA, fused, 1×1 head.
    Gmfca,
    /// GMFCA + FFRDB, fused, 1×1 head.
    GmfcaFfrdb,
    /// GMFCA + U-Net (no FFRDB).
    GmfcaUnet,
    /// The full AMUN: GMFCA + FFRDB + U-Net.
    Full,
}

impl Ablation {
    /// All four variants, in the paper's order.
    pub const ALL: [Ablation; 4] = [
        Ablation::Gmfca,
        Ablation::GmfcaFfrdb,
        Ablation::GmfcaUnet,
        Ablation::Full,
    ];

    /// A short label (`gmfca`, `gmfca+ffrdb`, `gmfca+unet`, `full`).
    pub fn label(self) -> &'static str {
        match self {
            Ablation::Gmfca => "gmfca",
            Ablation::GmfcaFfrdb => "gmfca+ffrdb",
            Ablation::GmfcaUnet => "gmfca+unet",
            Ablation::Full => "full",
        }
    }
}

/// The AMUN architecture (`docs/design.md` §4). Every reading of the paper that it leaves
/// open is a field here.
///
/// Defaults are [`AmunConfig::small`] with the paper's seven covariates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AmunConfig {
    /// Covariate band names, in input order (default: the paper's seven, `ndvi`,
    /// `landcover`, `reflectance`, `mndwi`, `ndbi`, `slope`, `aspect`). Any number ≥ 1.
    pub covariates: Vec<String>,
    /// Name of the band that holds aspect in degrees (default `aspect`); it is encoded as
    /// [`AmunConfig::aspect_encoding`] says. Other bands are fed as they are.
    pub aspect_band: String,
    /// Encoding of the aspect band (default [`AspectEncoding::CosSin`]).
    pub aspect_encoding: AspectEncoding,
    /// Name of the band that holds IGBP land-cover codes (default `landcover`); it is
    /// encoded as [`AmunConfig::landcover_encoding`] says.
    pub landcover_band: String,
    /// Encoding of the land-cover band (default [`LandcoverEncoding::Codes`]: the code as a
    /// number, as the paper feeds it). [`LandcoverEncoding::OneHot`] feeds one 0/1 channel
    /// per listed class (`landcover:lc_<class>`): a code is a category, not a magnitude, and
    /// a network that learns what a class does from block means alone
    /// ([`Supervision::CoarseResidual`]) must see it as one.
    pub landcover_encoding: LandcoverEncoding,
    /// Feature width `C` of the shallow features, GMFCA and FFRDB (default 16).
    pub channels: usize,
    /// Growth rate `G` of each residual dense block (default 16).
    pub rdb_growth: usize,
    /// Number of residual dense blocks in FFRDB (paper: 3).
    pub rdb_count: usize,
    /// Conv layers per residual dense block (paper: 3).
    pub rdb_layers: usize,
    /// U-Net encoder widths, one per level (default `[16, 32, 64, 128]`). Patch sides must
    /// be multiples of `2^levels`.
    pub unet_widths: Vec<usize>,
    /// Width of the U-Net bridge (default 256).
    pub unet_bridge: usize,
    /// Predict the residual over the base field (default true): `LST_fine = base + net(x)`.
    pub residual: bool,
    /// The base field, also the network's first input channel (default
    /// [`Base::Bilinear`]: the bilinearly upsampled coarse LST, as in the paper); a
    /// physical prior ([`Base::Prior`]) is fitted on each scene, in training and inference.
    pub base: Base,
    /// Include the GMFCA module (default true).
    pub gmfca: bool,
    /// Include the FFRDB module (default true).
    pub ffrdb: bool,
    /// Include the U-Net (default true). Without it a 1×1 conv maps the fused features to
    /// the output.
    pub unet: bool,
    /// What the network learns from (default [`Supervision::FineLabel`]).
    pub supervision: Supervision,
}

/// How one covariate band's value becomes one input channel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelMap {
    /// The value as it is.
    Value,
    /// The cosine of a direction in degrees (aspect → northness).
    Cos,
    /// The sine of a direction in degrees (aspect → eastness).
    Sin,
    /// 1 where the land-cover code is this class, else 0.
    Class(Igbp),
    /// The land-cover code divided by 17 ([`amun_indices::encode_scaled`]).
    Scaled,
}

impl ChannelMap {
    /// The channel's value for a band value (`NaN` stays `NaN`).
    pub(crate) fn apply(self, v: f32) -> f32 {
        if v.is_nan() {
            return v;
        }
        match self {
            ChannelMap::Value => v,
            ChannelMap::Cos => f64::from(v).to_radians().cos() as f32,
            ChannelMap::Sin => f64::from(v).to_radians().sin() as f32,
            ChannelMap::Class(c) => f32::from(u8::from((v - f32::from(c.code())).abs() < 0.5)),
            ChannelMap::Scaled => v / f32::from(Igbp::MAX_CODE),
        }
    }

    /// The channel's name after the band's (`northness`, `lc_urban`), if it has one.
    fn suffix(self) -> Option<String> {
        match self {
            ChannelMap::Value | ChannelMap::Scaled => None,
            ChannelMap::Cos => Some("northness".into()),
            ChannelMap::Sin => Some("eastness".into()),
            ChannelMap::Class(c) => Some(c.band_name()),
        }
    }
}

/// What a network is trained against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Supervision {
    /// A fine label per pixel: the paper's fine truth, or the coarse field itself for a pair
    /// one scale up (the scale-up scheme). The base field is the first input channel.
    #[default]
    FineLabel,
    /// No fine truth and no pair one scale up: the network works at the target scale, on
    /// the fine covariates alone, and the block means of its correction are fitted to what
    /// the prior's linear model leaves of each coarse cell (the prior's coarse residual,
    /// [`amun_prior::Prior::coarse_residual`]). A function of the fine covariates whose
    /// block means explain that residual across cells — a nonlinear effect, a product of
    /// two covariates — is learnt where it acts, at the fine scale, so it transfers with
    /// no change of scale. The base field is not an input (it carries the coarse residual
    /// itself, which the network would copy instead of explaining it); the correction's
    /// block means repeat what the prior's coarse field already holds, so the model is
    /// used with coarse conservation. Needs a prior base and `residual`. FFRDB refines the
    /// base channel's features alone: without the base it sees a constant, and `ffrdb:
    /// false` (the paper's GMFCA + U-Net variant) saves its cost.
    CoarseResidual,
}

impl Default for AmunConfig {
    fn default() -> Self {
        Self::small()
    }
}

/// The paper's seven covariates in its order.
pub const PAPER_COVARIATES: [&str; 7] = [
    "ndvi",
    "landcover",
    "reflectance",
    "mndwi",
    "ndbi",
    "slope",
    "aspect",
];

impl AmunConfig {
    /// A configuration that trains on a laptop CPU in minutes: C = 16, G = 16, U-Net
    /// `[16, 32, 64, 128]` + 256 (about 2.0 M parameters with seven covariates).
    pub fn small() -> Self {
        Self {
            covariates: PAPER_COVARIATES.iter().map(|s| s.to_string()).collect(),
            aspect_band: "aspect".into(),
            aspect_encoding: AspectEncoding::CosSin,
            landcover_band: "landcover".into(),
            landcover_encoding: LandcoverEncoding::Codes,
            channels: 16,
            rdb_growth: 16,
            rdb_count: 3,
            rdb_layers: 3,
            unet_widths: vec![16, 32, 64, 128],
            unet_bridge: 256,
            residual: true,
            base: Base::Bilinear,
            gmfca: true,
            ffrdb: true,
            unet: true,
            supervision: Supervision::FineLabel,
        }
    }

    /// The smallest network with every part of AMUN: C = 4, G = 4, one residual dense block
    /// of one layer, U-Net `[4, 8]` + 8. It trains in milliseconds and learns little: for
    /// tests and smoke runs, never for results.
    pub fn tiny() -> Self {
        Self {
            channels: 4,
            rdb_growth: 4,
            rdb_count: 1,
            rdb_layers: 1,
            unet_widths: vec![4, 8],
            unet_bridge: 8,
            ..Self::small()
        }
    }

    /// Whether the base field is the network's first input channel: with
    /// [`Supervision::CoarseResidual`] the channel is fed as zeros (the network sees the
    /// covariates alone).
    pub fn base_is_input(&self) -> bool {
        self.supervision == Supervision::FineLabel
    }

    /// This configuration with another land-cover encoding.
    pub fn with_landcover_encoding(mut self, encoding: LandcoverEncoding) -> Self {
        self.landcover_encoding = encoding;
        self
    }

    /// This configuration trained against `supervision`.
    pub fn with_supervision(mut self, supervision: Supervision) -> Self {
        self.supervision = supervision;
        self
    }

    /// This configuration with another base field.
    pub fn with_base(mut self, base: Base) -> Self {
        self.base = base;
        self
    }

    /// Widths chosen so that the weights come close to the paper's 84.1 MB: C = 64, G = 32,
    /// U-Net `[52, 104, 208, 416]` + 832 (about 21.0 M parameters, 84 MB of f32, with seven
    /// covariates; a standard 64…1024 U-Net would be 31 M parameters, 124 MB).
    pub fn paper() -> Self {
        Self {
            channels: 64,
            rdb_growth: 32,
            unet_widths: vec![52, 104, 208, 416],
            unet_bridge: 832,
            ..Self::small()
        }
    }

    /// This configuration with other covariate bands (in input order).
    pub fn with_covariates<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.covariates = names.iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// This configuration with the modules of an ablation variant.
    pub fn with_ablation(mut self, ablation: Ablation) -> Self {
        self.gmfca = true;
        (self.ffrdb, self.unet) = match ablation {
            Ablation::Gmfca => (false, false),
            Ablation::GmfcaFfrdb => (true, false),
            Ablation::GmfcaUnet => (false, true),
            Ablation::Full => (true, true),
        };
        self
    }

    /// The network's auxiliary input channels after encoding, in order: each covariate
    /// name, except the aspect band, which becomes `aspect:northness` and `aspect:eastness`
    /// with [`AspectEncoding::CosSin`], and the land-cover band, which becomes
    /// `landcover:lc_<class>` per class with [`LandcoverEncoding::OneHot`].
    pub fn aux_channels(&self) -> Vec<String> {
        self.channel_maps()
            .into_iter()
            .flat_map(|(name, maps)| {
                let single = maps.len() == 1 && maps[0] == ChannelMap::Value;
                maps.into_iter().map(move |m| match m.suffix() {
                    Some(s) if !single => format!("{name}:{s}"),
                    _ => name.clone(),
                })
            })
            .collect()
    }

    /// Each covariate band in input order with the maps from its value to its channels'.
    pub(crate) fn channel_maps(&self) -> Vec<(String, Vec<ChannelMap>)> {
        self.covariates
            .iter()
            .map(|name| {
                let maps = if *name == self.aspect_band
                    && self.aspect_encoding == AspectEncoding::CosSin
                {
                    vec![ChannelMap::Cos, ChannelMap::Sin]
                } else if *name == self.landcover_band {
                    match &self.landcover_encoding {
                        LandcoverEncoding::OneHot(classes) => {
                            classes.iter().map(|&c| ChannelMap::Class(c)).collect()
                        }
                        LandcoverEncoding::Scaled => vec![ChannelMap::Scaled],
                        _ => vec![ChannelMap::Value],
                    }
                } else {
                    vec![ChannelMap::Value]
                };
                (name.clone(), maps)
            })
            .collect()
    }

    /// Number of auxiliary input channels (`n_aux`); the network takes `1 + n_aux`.
    pub fn n_aux(&self) -> usize {
        self.aux_channels().len()
    }

    /// Patch and tile sides must be multiples of this (`2^levels` with the U-Net, else 1).
    pub fn size_multiple(&self) -> usize {
        if self.unet {
            1 << self.unet_widths.len()
        } else {
            1
        }
    }

    /// The receptive-field radius in fine pixels: an output pixel depends on no input farther
    /// than this (in rows or columns), and on some input this far for some pixel phase.
    /// Tiled inference uses it as the halo of interior tile edges.
    ///
    /// Computed exactly for the architecture by following the interval of pixels each layer
    /// reads, back from an output pixel to the input, for every phase of the pixel against
    /// the U-Net's pooling lattice: a 3×3 convolution widens an interval by one pixel of its
    /// level on each side, a 2×2 max-pool or transposed convolution maps it between levels
    /// without widening it (`crate::model` has the layer order).
    pub fn receptive_radius(&self) -> usize {
        // Full-resolution layers before the U-Net (all translation-equivariant).
        // Shallow 3×3 conv: 1. GMFCA adds one 3×3 conv (w_T / s_i): 2.
        let mut pre = if self.gmfca { 2 } else { 1 };
        if self.ffrdb {
            // rdb_count blocks, each a chain of rdb_layers 3×3 convs (the longest path of
            // the dense connections), then the 3×3 of global fusion.
            pre = pre.max(1 + self.rdb_count * self.rdb_layers + 1);
        }
        if !self.unet {
            return pre;
        }
        let levels = self.unet_widths.len();
        let period = 1i64 << levels;
        let reach = (0..period)
            .map(|p| {
                let (lo, hi) = unet_decoder_reads(p, p, 0, levels);
                (p - lo).max(hi - p)
            })
            .max()
            .unwrap_or(0);
        pre + reach as usize
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field: no covariates, a duplicate covariate,
    /// a zero width, or an empty U-Net.
    pub fn validate(&self) -> Result<()> {
        if self.covariates.is_empty() {
            return Err(Error::config(
                "covariates",
                "at least one covariate is needed",
            ));
        }
        for (i, n) in self.covariates.iter().enumerate() {
            if self.covariates[..i].contains(n) {
                return Err(Error::config("covariates", format!("`{n}` listed twice")));
            }
        }
        if self.channels == 0 {
            return Err(Error::config("channels", "must be ≥ 1"));
        }
        if let Base::Prior(p) = &self.base {
            p.clone()
                .check()
                .map_err(|e| Error::config("base", e.to_string()))?;
        }
        if self.supervision == Supervision::CoarseResidual
            && (!self.residual || !matches!(self.base, Base::Prior(_)))
        {
            return Err(Error::config(
                "supervision",
                format!(
                    "coarse_residual learns a correction of a physical prior: it needs `residual: true` and a prior base, got residual {} and base {}",
                    self.residual,
                    self.base.name()
                ),
            ));
        }
        if self.ffrdb && (self.rdb_growth == 0 || self.rdb_count == 0 || self.rdb_layers == 0) {
            return Err(Error::config(
                "rdb_growth/rdb_count/rdb_layers",
                format!(
                    "must all be ≥ 1 with FFRDB on, got {}/{}/{}",
                    self.rdb_growth, self.rdb_count, self.rdb_layers
                ),
            ));
        }
        if self.unet {
            if self.unet_widths.is_empty() || self.unet_widths.len() > 8 {
                return Err(Error::config(
                    "unet_widths",
                    format!("needs 1 to 8 levels, got {}", self.unet_widths.len()),
                ));
            }
            if self.unet_widths.contains(&0) || self.unet_bridge == 0 {
                return Err(Error::config("unet_widths", "widths must be ≥ 1"));
            }
        }
        Ok(())
    }
}

/// Input pixels (level 0, inclusive interval) read by the U-Net to produce decoder outputs
/// `a..=b` at `level` (after that level's two 3×3 convs; `level == levels` is the bridge).
fn unet_decoder_reads(a: i64, b: i64, level: usize, levels: usize) -> (i64, i64) {
    // Two 3×3 convs at this level.
    let (a, b) = (a - 2, b + 2);
    if level == levels {
        // The bridge reads the 2×2 max-pool of the deepest encoder level.
        return unet_encoder_reads(2 * a, 2 * b + 1, level - 1);
    }
    // The concatenation of the skip (encoder output at this level) and the 2×2 transposed
    // conv of the level below, where pixel q reads pixel ⌊q/2⌋.
    let skip = unet_encoder_reads(a, b, level);
    let up = unet_decoder_reads(a.div_euclid(2), b.div_euclid(2), level + 1, levels);
    (skip.0.min(up.0), skip.1.max(up.1))
}

/// Input pixels read by the U-Net's encoder to produce its outputs `a..=b` at `level`.
fn unet_encoder_reads(a: i64, b: i64, level: usize) -> (i64, i64) {
    let (a, b) = (a - 2, b + 2);
    if level == 0 {
        (a, b)
    } else {
        // Max-pool: pixel q reads pixels 2q and 2q + 1 of the level above.
        unet_encoder_reads(2 * a, 2 * b + 1, level - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aspect_becomes_two_channels() {
        let cfg = AmunConfig::small();
        let ch = cfg.aux_channels();
        assert_eq!(ch.len(), 8);
        assert_eq!(ch[6], "aspect:northness");
        assert_eq!(ch[7], "aspect:eastness");
        let raw = AmunConfig {
            aspect_encoding: AspectEncoding::Degrees,
            ..AmunConfig::small()
        };
        assert_eq!(raw.n_aux(), 7);
        let elev = AmunConfig::small().with_covariates(&["elevation", "ndvi"]);
        assert_eq!(elev.aux_channels(), ["elevation", "ndvi"]);
    }

    #[test]
    fn validation_names_the_field() {
        let mut cfg = AmunConfig::small().with_covariates(&["a", "a"]);
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("covariates") && e.contains("twice"), "{e}");
        cfg = AmunConfig {
            unet_widths: vec![],
            ..AmunConfig::small()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unet_widths"));
        assert!(AmunConfig::paper().validate().is_ok());
    }

    #[test]
    fn json_round_trip_and_defaults() {
        let cfg = AmunConfig::paper().with_ablation(Ablation::GmfcaUnet);
        let s = serde_json::to_string(&cfg).unwrap();
        let back: AmunConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, cfg);
        // Missing fields take the defaults.
        let partial: AmunConfig = serde_json::from_str(r#"{"channels": 8}"#).unwrap();
        assert_eq!(partial.channels, 8);
        assert_eq!(partial.unet_widths, AmunConfig::small().unet_widths);
    }

    #[test]
    fn size_multiple_and_receptive_field() {
        let cfg = AmunConfig::small();
        assert_eq!(cfg.size_multiple(), 16);
        let no_unet = cfg.clone().with_ablation(Ablation::GmfcaFfrdb);
        assert_eq!(no_unet.size_multiple(), 1);
        // 1 (shallow) + 3·3 (RDB convs) + 1 (GFF 3×3) = 11.
        assert_eq!(no_unet.receptive_radius(), 11);
        // U-Net on top: 11 + 107 (the model tests check it against the network itself).
        assert_eq!(cfg.receptive_radius(), 118);
        let gmfca_unet = cfg.clone().with_ablation(Ablation::GmfcaUnet);
        assert_eq!(gmfca_unet.receptive_radius(), 2 + 107);
        assert_eq!(cfg.with_ablation(Ablation::Gmfca).receptive_radius(), 2);
    }
}

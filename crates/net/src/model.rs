//! The AMUN network (`docs/design.md` §4) as candle modules.
//!
//! Every convolution, transposed convolution, max-pool and channel concatenation goes through
//! `amun-kernels`, so that its fast CPU kernels are used when selected. Variable paths
//! (`vb.pp(..)`) are the checkpoint keys, e.g. `gmfca.cwe_t.weight`,
//! `ffrdb.rdb.0.conv.2.bias`, `unet.dec.3.up.weight`.

use amun_kernels::cat_channels;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::config::AmunConfig;

/// He-uniform bound `sqrt(6 / fan_in)`, right for layers followed by a ReLU.
fn he_bound(fan_in: usize) -> f64 {
    (6.0 / fan_in.max(1) as f64).sqrt()
}

/// A 2-D convolution with bias, stride 1 and "same" zero padding (`k / 2`).
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    padding: usize,
}

impl Conv {
    /// A `k×k` convolution from `c_in` to `c_out` channels (`k` odd), He-uniform weights and
    /// zero bias. Variables: `weight` `[c_out, c_in, k, k]`, `bias` `[c_out]`.
    ///
    /// # Errors
    /// If `k` is even or a stored variable has another shape.
    pub fn new(c_in: usize, c_out: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_scale(c_in, c_out, k, 1.0, vb)
    }

    /// As [`Conv::new`] with the initial weights scaled by `scale` (a small output layer
    /// makes the untrained network start close to its residual baseline).
    ///
    /// # Errors
    /// As [`Conv::new`].
    pub fn with_scale(
        c_in: usize,
        c_out: usize,
        k: usize,
        scale: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        if k.is_multiple_of(2) {
            candle_core::bail!("Conv: kernel size must be odd, got {k}");
        }
        let b = scale * he_bound(c_in * k * k);
        let weight = vb.get_with_hints(
            (c_out, c_in, k, k),
            "weight",
            Init::Uniform { lo: -b, up: b },
        )?;
        let bias = vb.get_with_hints(c_out, "bias", Init::Const(0.0))?;
        Ok(Self {
            weight,
            bias,
            padding: k / 2,
        })
    }
}

impl Conv {
    /// `relu(conv(x))` as one op (see [`amun_kernels::conv2d_relu`]).
    ///
    /// # Shapes
    /// `[B, c_in, H, W]` → `[B, c_out, H, W]`.
    ///
    /// # Errors
    /// On shape errors.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        amun_kernels::conv2d_relu(x, &self.weight, Some(&self.bias), self.padding)
    }
}

impl Module for Conv {
    /// # Shapes
    /// `[B, c_in, H, W]` → `[B, c_out, H, W]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        amun_kernels::conv2d(x, &self.weight, Some(&self.bias), self.padding)
    }
}

/// A 2×2 transposed convolution with stride 2 (the U-Net's up-sampling).
#[derive(Debug, Clone)]
pub struct UpConv {
    weight: Tensor,
    bias: Tensor,
}

impl UpConv {
    /// From `c_in` to `c_out` channels. Variables: `weight` `[c_in, c_out, 2, 2]`, `bias`
    /// `[c_out]`.
    ///
    /// # Errors
    /// If a stored variable has another shape.
    pub fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        // Each output pixel receives one tap from each input channel.
        let b = he_bound(c_in);
        let weight = vb.get_with_hints(
            (c_in, c_out, 2, 2),
            "weight",
            Init::Uniform { lo: -b, up: b },
        )?;
        let bias = vb.get_with_hints(c_out, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias })
    }
}

impl Module for UpConv {
    /// # Shapes
    /// `[B, c_in, H, W]` → `[B, c_out, 2H, 2W]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        amun_kernels::conv_transpose2x2(x, &self.weight, Some(&self.bias))
    }
}

/// Global multi-factor cross-attention (GMFCA), built from channel-weight extraction.
///
/// `w_T = σ(conv3×3(F_T))` (C×H×W), `s_i = σ(conv3×3(F_A,i))` (1×H×W),
/// `A = Σ_i F_A,i ⊙ w_T`, `T = Σ_i F_T ⊙ s_i`, output `conv1×1([A, T])`. No global pooling,
/// so the network stays fully convolutional.
#[derive(Debug, Clone)]
pub struct Gmfca {
    cwe_t: Conv,
    cwe_a: Vec<Conv>,
    fuse: Conv,
}

impl Gmfca {
    /// For `n_aux` covariate feature maps of `cfg.channels` channels. Paths: `cwe_t`,
    /// `cwe_a.{i}`, `fuse`.
    ///
    /// # Errors
    /// As [`Conv::new`].
    pub fn new(cfg: &AmunConfig, n_aux: usize, vb: VarBuilder) -> Result<Self> {
        let c = cfg.channels;
        let cwe_t = Conv::new(c, c, 3, vb.pp("cwe_t"))?;
        let cwe_a = (0..n_aux)
            .map(|i| Conv::new(c, 1, 3, vb.pp("cwe_a").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let fuse = Conv::new(2 * c, c, 1, vb.pp("fuse"))?;
        Ok(Self { cwe_t, cwe_a, fuse })
    }

    /// # Shapes
    /// - `f_t`: `[B, C, H, W]`
    /// - `f_a`: `n_aux` tensors `[B, C, H, W]`
    /// - returns `[B, C, H, W]`
    ///
    /// # Errors
    /// If `f_a` does not have `n_aux` entries, or on shape errors.
    pub fn forward(&self, f_t: &Tensor, f_a: &[Tensor]) -> Result<Tensor> {
        if f_a.len() != self.cwe_a.len() {
            candle_core::bail!(
                "GMFCA built for {} covariates, got {}",
                self.cwe_a.len(),
                f_a.len()
            );
        }
        self.forward_with(f_t, |i| Ok(f_a[i].clone()))
    }

    /// [`Gmfca::forward`] with the covariate features made one at a time by `f_a(i)`, so
    /// that only one of them is alive at once: `Σ_i F_A,i` and `Σ_i s_i` are accumulated in
    /// the order of `i`.
    fn forward_with(&self, f_t: &Tensor, f_a: impl Fn(usize) -> Result<Tensor>) -> Result<Tensor> {
        let mut sum_a: Option<Tensor> = None; // [B, C, H, W]
        let mut sum_s: Option<Tensor> = None; // [B, 1, H, W]
        for (i, cwe) in self.cwe_a.iter().enumerate() {
            let f = f_a(i)?;
            let s = candle_nn::ops::sigmoid(&cwe.forward(&f)?)?;
            sum_s = Some(match sum_s {
                Some(acc) => (acc + s)?,
                None => s,
            });
            sum_a = Some(match sum_a {
                Some(acc) => (acc + f)?,
                None => f,
            });
        }
        let (Some(sum_a), Some(sum_s)) = (sum_a, sum_s) else {
            candle_core::bail!("GMFCA needs at least one covariate");
        };
        let w_t = candle_nn::ops::sigmoid(&self.cwe_t.forward(f_t)?)?; // [B, C, H, W]
        let a = (sum_a * w_t)?; // Σ_i F_A,i ⊙ w_T = (Σ_i F_A,i) ⊙ w_T
        let t = f_t.broadcast_mul(&sum_s)?; // Σ_i F_T ⊙ s_i = F_T ⊙ Σ_i s_i
        drop(sum_s);
        let cat = cat_channels(&[&a, &t])?; // [B, 2C, H, W]
        drop((a, t));
        self.fuse.forward(&cat) // [B, C, H, W]
    }
}

/// A residual dense block (Zhang et al., RDN): densely connected 3×3 convs with ReLU,
/// local feature fusion (1×1 back to C) and a local residual.
#[derive(Debug, Clone)]
pub struct Rdb {
    convs: Vec<Conv>,
    lff: Conv,
}

impl Rdb {
    /// `cfg.rdb_layers` convs of growth `cfg.rdb_growth` on `cfg.channels` channels. Paths:
    /// `conv.{l}`, `lff`.
    ///
    /// # Errors
    /// As [`Conv::new`].
    pub fn new(cfg: &AmunConfig, vb: VarBuilder) -> Result<Self> {
        let (c, g) = (cfg.channels, cfg.rdb_growth);
        let convs = (0..cfg.rdb_layers)
            .map(|l| Conv::new(c + l * g, g, 3, vb.pp("conv").pp(l)))
            .collect::<Result<Vec<_>>>()?;
        let lff = Conv::new(c + cfg.rdb_layers * g, c, 1, vb.pp("lff"))?;
        Ok(Self { convs, lff })
    }
}

impl Module for Rdb {
    /// # Shapes
    /// `[B, C, H, W]` → `[B, C, H, W]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // The dense connections: layer l sees [x, f_1, …, f_l−1]; each concatenation extends
        // the previous one (which is dropped as soon as the next one exists).
        let mut inp = x.clone();
        for conv in &self.convs {
            let f = conv.forward_relu(&inp)?;
            inp = cat_channels(&[&inp, &f])?; // [B, C + l·G, H, W]
        }
        let fused = self.lff.forward(&inp)?;
        drop(inp);
        fused + x
    }
}

/// FFRDB: `cfg.rdb_count` residual dense blocks in sequence; global feature fusion of their
/// outputs (concat → 1×1 → 3×3).
#[derive(Debug, Clone)]
pub struct Ffrdb {
    rdbs: Vec<Rdb>,
    gff1: Conv,
    gff3: Conv,
}

impl Ffrdb {
    /// Paths: `rdb.{j}`, `gff1`, `gff3`.
    ///
    /// # Errors
    /// As [`Conv::new`].
    pub fn new(cfg: &AmunConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.channels;
        let rdbs = (0..cfg.rdb_count)
            .map(|j| Rdb::new(cfg, vb.pp("rdb").pp(j)))
            .collect::<Result<Vec<_>>>()?;
        let gff1 = Conv::new(cfg.rdb_count * c, c, 1, vb.pp("gff1"))?;
        let gff3 = Conv::new(c, c, 3, vb.pp("gff3"))?;
        Ok(Self { rdbs, gff1, gff3 })
    }
}

impl Module for Ffrdb {
    /// # Shapes
    /// `[B, C, H, W]` → `[B, C, H, W]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut outs: Vec<Tensor> = Vec::with_capacity(self.rdbs.len());
        for rdb in &self.rdbs {
            let h = rdb.forward(outs.last().unwrap_or(x))?;
            outs.push(h);
        }
        let cat = cat_channels(&outs.iter().collect::<Vec<_>>())?; // [B, count·C, H, W]
        drop(outs);
        let g = self.gff1.forward(&cat)?; // [B, C, H, W]
        drop(cat);
        self.gff3.forward(&g)
    }
}

/// Two 3×3 conv + ReLU layers.
#[derive(Debug, Clone)]
struct DoubleConv {
    conv1: Conv,
    conv2: Conv,
}

impl DoubleConv {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: Conv::new(c_in, c_out, 3, vb.pp("conv1"))?,
            conv2: Conv::new(c_out, c_out, 3, vb.pp("conv2"))?,
        })
    }
}

impl Module for DoubleConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward_relu(x)?;
        self.conv2.forward_relu(&h)
    }
}

/// The U-Net (encoder, bridge, decoder) and its 1×1 output conv.
#[derive(Debug, Clone)]
pub struct UNet {
    enc: Vec<DoubleConv>,
    bridge: DoubleConv,
    up: Vec<UpConv>,
    dec: Vec<DoubleConv>,
    out: Conv,
}

impl UNet {
    /// From `c_in` channels to one, with `cfg.unet_widths` and `cfg.unet_bridge`. Paths:
    /// `enc.{l}.conv{1,2}`, `bridge.conv{1,2}`, `dec.{l}.up`, `dec.{l}.conv{1,2}`, `out`.
    ///
    /// # Errors
    /// As [`Conv::new`].
    pub fn new(cfg: &AmunConfig, c_in: usize, vb: VarBuilder) -> Result<Self> {
        let widths = &cfg.unet_widths;
        let mut enc = Vec::with_capacity(widths.len());
        let mut prev = c_in;
        for (l, &w) in widths.iter().enumerate() {
            enc.push(DoubleConv::new(prev, w, vb.pp("enc").pp(l))?);
            prev = w;
        }
        let bridge = DoubleConv::new(prev, cfg.unet_bridge, vb.pp("bridge"))?;
        let mut up = Vec::with_capacity(widths.len());
        let mut dec = Vec::with_capacity(widths.len());
        let mut below = cfg.unet_bridge;
        // Decoder levels are stored shallowest first (dec.0 is the full-resolution level).
        for (l, &w) in widths.iter().enumerate().rev() {
            up.push(UpConv::new(below, w, vb.pp("dec").pp(l).pp("up"))?);
            dec.push(DoubleConv::new(2 * w, w, vb.pp("dec").pp(l))?);
            below = w;
        }
        up.reverse();
        dec.reverse();
        let out = Conv::with_scale(widths[0], 1, 1, 0.1, vb.pp("out"))?;
        Ok(Self {
            enc,
            bridge,
            up,
            dec,
            out,
        })
    }
}

impl Module for UNet {
    /// # Shapes
    /// `[B, c_in, H, W]` → `[B, 1, H, W]`, `H` and `W` multiples of `2^levels`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut skips = Vec::with_capacity(self.enc.len());
        let mut h = x.clone();
        for enc in &self.enc {
            let s = enc.forward(&h)?;
            h = amun_kernels::max_pool2x2(&s)?; // [B, w, H/2, W/2]
            skips.push(s);
        }
        h = self.bridge.forward(&h)?;
        // Each skip is consumed (and freed) by its decoder level, deepest first.
        for (up, dec) in self.up.iter().zip(&self.dec).rev() {
            let Some(skip) = skips.pop() else {
                candle_core::bail!("U-Net: fewer skips than decoder levels");
            };
            let u = up.forward(&h)?; // [B, w, 2h, 2w]
            drop(h);
            let cat = cat_channels(&[&skip, &u])?; // [B, 2w, ..]
            drop((skip, u));
            h = dec.forward(&cat)?; // [B, w, ..]
        }
        self.out.forward(&h)
    }
}

/// The AMUN network.
///
/// Input: `1 + n_aux` normalised channels on the fine grid — the coarse LST resampled
/// bilinearly, then the covariates in [`AmunConfig::aux_channels`] order. Output: one channel,
/// the normalised residual over the bilinear LST (or the normalised LST itself with
/// `residual: false`).
#[derive(Debug, Clone)]
pub struct Amun {
    cfg: AmunConfig,
    shallow_lst: Conv,
    shallow_aux: Vec<Conv>,
    gmfca: Option<Gmfca>,
    ffrdb: Option<Ffrdb>,
    fusion: Conv,
    unet: Option<UNet>,
    head: Option<Conv>,
}

impl Amun {
    /// Builds the network; variables come from (or are created in) `vb`. Paths:
    /// `shallow.lst`, `shallow.aux.{i}`, `gmfca.*`, `ffrdb.*`, `fusion`, `unet.*`, `head`.
    ///
    /// # Errors
    /// An invalid configuration (see [`AmunConfig::validate`]) or a stored variable of
    /// another shape.
    pub fn new(cfg: &AmunConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = cfg.validate() {
            candle_core::bail!("{e}");
        }
        let c = cfg.channels;
        let n_aux = cfg.n_aux();
        let shallow_lst = Conv::new(1, c, 3, vb.pp("shallow").pp("lst"))?;
        let shallow_aux = (0..n_aux)
            .map(|i| Conv::new(1, c, 3, vb.pp("shallow").pp("aux").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let gmfca = match cfg.gmfca {
            true => Some(Gmfca::new(cfg, n_aux, vb.pp("gmfca"))?),
            false => None,
        };
        let ffrdb = match cfg.ffrdb {
            true => Some(Ffrdb::new(cfg, vb.pp("ffrdb"))?),
            false => None,
        };
        // Fusion of F_T, F_GMFCA (or Σ F_A,i without GMFCA) and F_FFRDB.
        let n_fused = 2 + usize::from(cfg.ffrdb);
        let fusion = Conv::new(n_fused * c, c, 1, vb.pp("fusion"))?;
        let (unet, head) = if cfg.unet {
            (Some(UNet::new(cfg, c, vb.pp("unet"))?), None)
        } else {
            (None, Some(Conv::with_scale(c, 1, 1, 0.1, vb.pp("head"))?))
        };
        Ok(Self {
            cfg: cfg.clone(),
            shallow_lst,
            shallow_aux,
            gmfca,
            ffrdb,
            fusion,
            unet,
            head,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &AmunConfig {
        &self.cfg
    }
}

impl Module for Amun {
    /// # Shapes
    /// `[B, 1 + n_aux, H, W]` → `[B, 1, H, W]`; with the U-Net, `H` and `W` must be multiples
    /// of [`AmunConfig::size_multiple`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, ch, h, w) = x.dims4()?;
        let n_aux = self.shallow_aux.len();
        if ch != 1 + n_aux {
            candle_core::bail!("AMUN expects {} input channels, got {ch}", 1 + n_aux);
        }
        let m = self.cfg.size_multiple();
        if h % m != 0 || w % m != 0 {
            candle_core::bail!("AMUN input {h}×{w} is not a multiple of {m}");
        }
        let f_t = self.shallow_lst.forward(&x.narrow(1, 0, 1)?)?; // [B, C, H, W]
                                                                  // Covariate features are made one at a time where they are consumed (GMFCA, or
                                                                  // their sum without it), so that only one is alive at once.
        let f_a = |i: usize| -> Result<Tensor> {
            self.shallow_aux[i].forward(&x.narrow(1, 1 + i, 1)?) // [B, C, H, W]
        };
        let cross = match &self.gmfca {
            Some(g) => g.forward_with(&f_t, f_a)?,
            None => {
                let mut s = f_a(0)?;
                for i in 1..n_aux {
                    s = (s + f_a(i)?)?;
                }
                s
            }
        };
        let ff = match &self.ffrdb {
            Some(ff) => Some(ff.forward(&f_t)?),
            None => None,
        };
        let mut parts = vec![&f_t, &cross];
        parts.extend(ff.as_ref());
        let cat = cat_channels(&parts)?; // [B, (2 or 3)·C, H, W]
        drop(parts);
        drop((f_t, cross, ff));
        let fused = self.fusion.forward(&cat)?; // [B, C, H, W]
        drop(cat);
        match (&self.unet, &self.head) {
            (Some(u), _) => u.forward(&fused),
            (None, Some(h)) => h.forward(&fused),
            // Built with exactly one of the two.
            (None, None) => candle_core::bail!("AMUN built without an output layer"),
        }
    }
}

impl Amun {
    /// The number of scalar parameters of the network `cfg` describes, from the
    /// architecture's formula (`docs/design.md` §4.3), written out independently of the code that
    /// builds the blocks (the tests compare the two).
    pub fn parameter_count(cfg: &AmunConfig) -> usize {
        let conv = |c_in: usize, c_out: usize, k: usize| c_out * (c_in * k * k + 1);
        let (c, g, n) = (cfg.channels, cfg.rdb_growth, cfg.n_aux());
        let mut p = conv(1, c, 3) * (1 + n);
        if cfg.gmfca {
            p += conv(c, c, 3) + n * conv(c, 1, 3) + conv(2 * c, c, 1);
        }
        if cfg.ffrdb {
            let rdb: usize = (0..cfg.rdb_layers)
                .map(|l| conv(c + l * g, g, 3))
                .sum::<usize>()
                + conv(c + cfg.rdb_layers * g, c, 1);
            p += cfg.rdb_count * rdb + conv(cfg.rdb_count * c, c, 1) + conv(c, c, 3);
        }
        p += conv((2 + usize::from(cfg.ffrdb)) * c, c, 1);
        if cfg.unet {
            let ws = &cfg.unet_widths;
            let mut prev = c;
            for &w in ws {
                p += conv(prev, w, 3) + conv(w, w, 3);
                prev = w;
            }
            p += conv(prev, cfg.unet_bridge, 3) + conv(cfg.unet_bridge, cfg.unet_bridge, 3);
            let mut below = cfg.unet_bridge;
            for &w in ws.iter().rev() {
                p += below * w * 4 + w; // transposed 2×2
                p += conv(2 * w, w, 3) + conv(w, w, 3);
                below = w;
            }
            p += conv(ws[0], 1, 1);
        } else {
            p += conv(c, 1, 1);
        }
        p
    }
}

/// Live tensor sizes along a forward pass, in channels at full resolution.
#[derive(Debug, Default)]
struct Live {
    now: f64,
    peak: f64,
}

impl Live {
    fn alloc(&mut self, c: f64) {
        self.now += c;
        self.peak = self.peak.max(self.now);
    }

    fn free(&mut self, c: f64) {
        self.now -= c;
    }
}

impl Amun {
    /// The most tensor data alive at once during [`Module::forward`] without autograd (weights
    /// that are not variables), in `f32` values per pixel of the input: the channels of every
    /// tensor alive at the peak, those of deeper U-Net levels weighted by their share of
    /// pixels, the input's included. It follows the forward pass step by step (which tensor
    /// is made, which is dropped); `tests/memory.rs` checks it against the bytes actually
    /// allocated. Kernel scratch buffers (bounded per thread, whatever the image size) are
    /// not included.
    pub fn peak_values_per_pixel(cfg: &AmunConfig) -> f64 {
        let (c, g) = (cfg.channels as f64, cfg.rdb_growth as f64);
        let n_aux = cfg.n_aux();
        let mut m = Live::default();
        m.alloc(1.0 + n_aux as f64); // the input, alive throughout (the caller holds it)
                                     // One input channel is copied out for each shallow conv.
        let shallow = |m: &mut Live| {
            m.alloc(1.0);
            m.alloc(c);
            m.free(1.0);
        };
        shallow(&mut m); // f_t
        if cfg.gmfca {
            for i in 0..n_aux {
                shallow(&mut m); // f = F_A,i
                m.alloc(1.0); // cwe_a
                m.alloc(1.0); // sigmoid
                m.free(1.0);
                if i > 0 {
                    m.alloc(1.0); // Σ s
                    m.free(2.0);
                    m.alloc(c); // Σ F_A
                    m.free(2.0 * c);
                }
            }
            m.alloc(c); // cwe_t
            m.alloc(c); // w_t
            m.free(c);
            m.alloc(c); // a
            m.free(2.0 * c); // Σ F_A, w_t
            m.alloc(c); // t
            m.free(1.0); // Σ s
            m.alloc(2.0 * c); // cat
            m.free(2.0 * c); // a, t
            m.alloc(c); // fuse
            m.free(2.0 * c); // cat
        } else {
            for i in 0..n_aux {
                shallow(&mut m);
                if i > 0 {
                    m.alloc(c);
                    m.free(2.0 * c);
                }
            }
        }
        // Alive: input, f_t, cross.
        if cfg.ffrdb {
            let l = cfg.rdb_layers as f64;
            for _ in 0..cfg.rdb_count {
                for layer in 0..cfg.rdb_layers {
                    let layer = layer as f64;
                    m.alloc(g); // f
                    m.alloc(c + (layer + 1.0) * g); // cat
                    if layer > 0.0 {
                        m.free(c + layer * g); // the previous cat
                    }
                    m.free(g);
                }
                m.alloc(c); // lff
                m.free(c + l * g); // the last cat
                m.alloc(c); // + x
                m.free(c);
            }
            let r = cfg.rdb_count as f64;
            m.alloc(r * c); // cat of the outputs
            m.free(r * c);
            m.alloc(c); // gff1
            m.free(r * c);
            m.alloc(c); // gff3
            m.free(c);
        }
        let parts = 2.0 + f64::from(u8::from(cfg.ffrdb));
        m.alloc(parts * c); // cat
        m.free(parts * c);
        m.alloc(c); // fusion
        m.free(parts * c);
        // Alive: input, fused.
        if cfg.unet {
            let widths = &cfg.unet_widths;
            let share = |level: usize| 0.25f64.powi(level as i32);
            let mut below = 0.0; // the pooled input of the current level
            for (level, &w) in widths.iter().enumerate() {
                let w = w as f64 * share(level);
                m.alloc(w); // conv1
                m.alloc(w); // conv2 = skip
                m.free(w);
                m.alloc(w / 4.0); // pool
                m.free(below);
                below = w / 4.0;
            }
            let deepest = widths.len();
            let b = cfg.unet_bridge as f64 * share(deepest);
            m.alloc(b);
            m.alloc(b);
            m.free(b);
            m.free(below);
            let mut h = b;
            for (level, &w) in widths.iter().enumerate().rev() {
                let w = w as f64 * share(level);
                m.alloc(w); // up
                m.free(h);
                m.alloc(2.0 * w); // cat
                m.free(2.0 * w); // skip, up
                m.alloc(w); // conv1
                m.alloc(w); // conv2
                m.free(w);
                m.free(2.0 * w); // cat
                h = w;
            }
            m.alloc(1.0); // out
        } else {
            m.alloc(1.0); // head
        }
        m.peak
    }
}

/// Number of scalar parameters in a set of variables.
pub fn count_parameters(vars: &[(String, candle_core::Var)]) -> usize {
    vars.iter().map(|(_, v)| v.elem_count()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ablation;
    use crate::init::SeededVarMap;
    use candle_core::{DType, Device};

    fn build(cfg: &AmunConfig) -> (Amun, SeededVarMap) {
        let map = SeededVarMap::new(1);
        let model = Amun::new(cfg, map.var_builder(&Device::Cpu)).unwrap();
        (model, map)
    }

    fn tiny() -> AmunConfig {
        AmunConfig {
            channels: 4,
            rdb_growth: 3,
            unet_widths: vec![4, 6],
            unet_bridge: 8,
            ..AmunConfig::small()
        }
    }

    #[test]
    fn parameter_counts_of_presets_and_ablations() {
        for cfg in [AmunConfig::small(), AmunConfig::paper()] {
            for ab in Ablation::ALL {
                let cfg = cfg.clone().with_ablation(ab);
                let (_, map) = build(&cfg);
                let got = count_parameters(&map.sorted_vars());
                assert_eq!(got, Amun::parameter_count(&cfg), "{ab:?}");
            }
        }
        // The presets' documented sizes.
        let small = count_parameters(&build(&AmunConfig::small()).1.sorted_vars());
        assert!((1_900_000..2_100_000).contains(&small), "small: {small}");
        let paper = count_parameters(&build(&AmunConfig::paper()).1.sorted_vars());
        let mb = paper as f64 * 4.0 / 1e6;
        assert!(
            (80.0..88.0).contains(&mb),
            "paper: {paper} params, {mb:.1} MB"
        );
    }

    #[test]
    fn block_shapes() {
        let cfg = tiny();
        let dev = Device::Cpu;
        let map = SeededVarMap::new(3);
        let vb = map.var_builder(&dev);
        let x = Tensor::ones((2, 4, 16, 16), DType::F32, &dev).unwrap();
        let rdb = Rdb::new(&cfg, vb.pp("r")).unwrap();
        assert_eq!(rdb.forward(&x).unwrap().dims(), [2, 4, 16, 16]);
        let ff = Ffrdb::new(&cfg, vb.pp("f")).unwrap();
        assert_eq!(ff.forward(&x).unwrap().dims(), [2, 4, 16, 16]);
        let g = Gmfca::new(&cfg, 3, vb.pp("g")).unwrap();
        let fa = vec![x.clone(), x.clone(), x.clone()];
        assert_eq!(g.forward(&x, &fa).unwrap().dims(), [2, 4, 16, 16]);
        assert!(g.forward(&x, &fa[..2]).is_err());
        let u = UNet::new(&cfg, 4, vb.pp("u")).unwrap();
        assert_eq!(u.forward(&x).unwrap().dims(), [2, 1, 16, 16]);
        let up = UpConv::new(4, 5, vb.pp("up")).unwrap();
        assert_eq!(up.forward(&x).unwrap().dims(), [2, 5, 32, 32]);
        for ab in Ablation::ALL {
            let cfg = tiny().with_ablation(ab);
            let (m, _) = build(&cfg);
            let x = Tensor::ones((1, 9, 8, 12), DType::F32, &dev).unwrap();
            assert_eq!(m.forward(&x).unwrap().dims(), [1, 1, 8, 12], "{ab:?}");
        }
        let (m, _) = build(&tiny());
        // Wrong channel count and a side that is not a multiple of 4 are refused.
        assert!(m
            .forward(&Tensor::ones((1, 8, 8, 8), DType::F32, &dev).unwrap())
            .is_err());
        assert!(m
            .forward(&Tensor::ones((1, 9, 8, 10), DType::F32, &dev).unwrap())
            .is_err());
    }

    #[test]
    fn checkpoint_keys_are_stable() {
        let (_, map) = build(&tiny());
        let names: Vec<String> = map.sorted_vars().into_iter().map(|(n, _)| n).collect();
        for key in [
            "shallow.lst.weight",
            "shallow.aux.7.bias",
            "gmfca.cwe_t.weight",
            "gmfca.cwe_a.0.weight",
            "gmfca.fuse.weight",
            "ffrdb.rdb.2.conv.2.weight",
            "ffrdb.rdb.0.lff.bias",
            "ffrdb.gff3.weight",
            "fusion.weight",
            "unet.enc.1.conv2.weight",
            "unet.bridge.conv1.weight",
            "unet.dec.0.up.weight",
            "unet.dec.1.conv1.weight",
            "unet.out.weight",
        ] {
            assert!(names.iter().any(|n| n == key), "missing {key}");
        }
    }

    /// The receptive radius is exact. With positive weights every layer is monotone and
    /// nothing cancels, so raising one input pixel raises exactly the outputs that depend on
    /// it — if no rounding hides the change. Two settings cover every path: zero biases and
    /// a zero input make every activation exactly 0 (sigmoids ½), so changes along the
    /// convolution paths grow from exactly 0; but the products of GMFCA then hide the
    /// sigmoid paths (0 × change), which a positive bias on the shallow convs opens. Over
    /// every phase against the pooling lattice, the farthest output that changes in either
    /// setting is [`AmunConfig::receptive_radius`] away, and none farther — for every
    /// ablation.
    #[test]
    fn receptive_radius_is_exact() {
        let dev = Device::Cpu;
        for ab in Ablation::ALL {
            let cfg = AmunConfig {
                unet_widths: vec![4, 6, 8],
                ..tiny()
            }
            .with_ablation(ab);
            let r = cfg.receptive_radius();
            let (_, map) = build(&cfg);
            let mut worst = 0;
            for shallow_bias in [0.0, 1.0] {
                for (name, v) in map.sorted_vars() {
                    let w = if name.ends_with("bias") {
                        let b = if name.starts_with("shallow.") {
                            shallow_bias
                        } else {
                            0.0
                        };
                        (v.as_tensor().zeros_like().unwrap() + b).unwrap()
                    } else {
                        (v.as_tensor().abs().unwrap() + 0.01).unwrap()
                    };
                    v.set(&w).unwrap();
                }
                // In f64, so that changes far down the U-Net stand out of a non-zero baseline.
                let tensors = map
                    .sorted_vars()
                    .into_iter()
                    .map(|(n, v)| (n, v.as_tensor().to_dtype(DType::F64).unwrap()))
                    .collect();
                let vb = VarBuilder::from_tensors(tensors, DType::F64, &dev);
                let m64 = Amun::new(&cfg, vb).unwrap();
                worst = worst.max(farthest_change(&m64, &cfg, r));
            }
            assert_eq!(worst, r, "{ab:?}");
        }
    }

    /// The largest column distance between a raised input pixel and an output that
    /// changes, over input columns of every phase.
    fn farthest_change(m: &Amun, cfg: &AmunConfig, r: usize) -> usize {
        let dev = Device::Cpu;
        let mult = cfg.size_multiple();
        let side = (2 * r + 3 * mult).div_ceil(mult) * mult;
        let (rows, n_ch) = (mult, 1 + cfg.n_aux());
        let base = Tensor::zeros((1, n_ch, rows, side), DType::F64, &dev).unwrap();
        let y0 = m.forward(&base).unwrap();
        let mut worst = 0;
        // Input columns of every phase, far from the left and right edges.
        for q in r + 1..r + 1 + mult.max(2) {
            let mut v = vec![0f64; n_ch * rows * side];
            for ch in 0..n_ch {
                v[ch * rows * side + q] = 1.0;
            }
            let x = Tensor::from_vec(v, (1, n_ch, rows, side), &dev).unwrap();
            let d = (m.forward(&x).unwrap() - &y0)
                .unwrap()
                .abs()
                .unwrap()
                .max(2) // over rows
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for (c, &dc) in d.iter().enumerate() {
                if dc > 0.0 {
                    worst = worst.max(c.abs_diff(q));
                }
            }
        }
        worst
    }
}

/// Finite-difference checks of the layer functions' gradients, in f64.
#[cfg(test)]
mod grad_tests {
    use candle_core::{DType, Device, Tensor, Var};

    fn rand_tensor(n: usize, seed: u64, shape: &[usize]) -> Vec<f64> {
        // A small LCG: distinct values, so the max of each window is unique.
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect::<Vec<_>>()
            .into_iter()
            .take(shape.iter().product())
            .collect()
    }

    /// d/dx Σ r ⊙ maxpool(x) by autograd vs central differences. candle 0.11.1's own
    /// max_pool2d backward gives r/4 at the maxima (the bug this guards against).
    #[test]
    fn max_pool_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let shape = [2usize, 3, 4, 6];
        let n: usize = shape.iter().product();
        let xv = rand_tensor(n, 1, &shape);
        let rv = rand_tensor(n / 4, 2, &[2, 3, 2, 3]);
        let r = Tensor::from_vec(rv, (2, 3, 2, 3), &dev).unwrap();
        let f = |x: &Tensor| -> f64 {
            (amun_kernels::max_pool2x2(x).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let x = Var::from_vec(xv.clone(), (2, 3, 4, 6), &dev).unwrap();
        let loss = (amun_kernels::max_pool2x2(x.as_tensor()).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap();
        let g: Vec<f64> = loss
            .backward()
            .unwrap()
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let h = 1e-6;
        let mut nonzero = 0;
        for i in 0..n {
            let mut p = xv.clone();
            p[i] += h;
            let mut m = xv.clone();
            m[i] -= h;
            let fd = (f(&Tensor::from_vec(p, (2, 3, 4, 6), &dev).unwrap())
                - f(&Tensor::from_vec(m, (2, 3, 4, 6), &dev).unwrap()))
                / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-6,
                "element {i}: autograd {} vs fd {fd}",
                g[i]
            );
            if fd.abs() > 1e-3 {
                nonzero += 1;
            }
        }
        // One maximum per window gets the whole gradient.
        assert_eq!(nonzero, n / 4);
    }

    /// Gradient of a small conv → ReLU → pool → transposed-conv chain with respect to the
    /// conv weights, autograd vs central differences.
    #[test]
    fn layer_chain_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(
            rand_tensor(2 * 2 * 8 * 8, 3, &[2, 2, 8, 8]),
            (2, 2, 8, 8),
            &dev,
        )
        .unwrap();
        let wv = rand_tensor(3 * 2 * 9, 4, &[3, 2, 3, 3]);
        let wt =
            Tensor::from_vec(rand_tensor(3 * 2 * 4, 5, &[3, 2, 2, 2]), (3, 2, 2, 2), &dev).unwrap();
        let f = |w: &Tensor| -> candle_core::Result<Tensor> {
            let y = amun_kernels::conv2d(&x, w, None, 1)?.relu()?;
            let y = amun_kernels::max_pool2x2(&y)?;
            let y = amun_kernels::conv_transpose2x2(&y, &wt, None)?;
            y.sqr()?.sum_all()
        };
        let w = Var::from_vec(wv.clone(), (3, 2, 3, 3), &dev).unwrap();
        let g: Vec<f64> = f(w.as_tensor())
            .unwrap()
            .backward()
            .unwrap()
            .get(w.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let h = 1e-6;
        for i in 0..wv.len() {
            let mut p = wv.clone();
            p[i] += h;
            let mut m = wv.clone();
            m[i] -= h;
            let v = |a: Vec<f64>| {
                f(&Tensor::from_vec(a, (3, 2, 3, 3), &dev).unwrap())
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let fd = (v(p) - v(m)) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()),
                "weight {i}: autograd {} vs fd {fd}",
                g[i]
            );
        }
        let _ = DType::F64;
    }
}

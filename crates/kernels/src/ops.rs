//! The candle custom ops that run this crate's kernels, with their backward passes.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use crate::conv::{self, ConvGeom};
use crate::convt::{self, UpGeom};
use crate::error::Error;
use crate::pool;

type CResult<T> = candle_core::Result<T>;

/// The contiguous `f32` data of a custom-op argument.
fn data<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &'static str,
    arg: &'static str,
) -> CResult<&'a [f32]> {
    let all = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => Err(Error::NotContiguous { op, arg }.into()),
    }
}

/// The four dimensions of a rank-4 argument.
fn dims4(l: &Layout, op: &'static str, arg: &'static str) -> CResult<[usize; 4]> {
    match *l.dims() {
        [a, b, c, d] => Ok([a, b, c, d]),
        ref got => Err(Error::Rank {
            op,
            arg,
            expected: 4,
            got: got.to_vec(),
        }
        .into()),
    }
}

/// Checks that a bias has shape `[c]`.
fn bias<'a>(s: &'a CpuStorage, l: &Layout, op: &'static str, c: usize) -> CResult<&'a [f32]> {
    match *l.dims() {
        [n] if n == c => data(s, l, op, "bias"),
        [n] => Err(Error::Dim {
            op,
            arg: "bias",
            dim: 0,
            expected: c,
            got: n,
        }
        .into()),
        ref got => Err(Error::Rank {
            op,
            arg: "bias",
            expected: 1,
            got: got.to_vec(),
        }
        .into()),
    }
}

fn out(v: Vec<f32>, shape: [usize; 4]) -> (CpuStorage, Shape) {
    (CpuStorage::F32(v), Shape::from(shape.to_vec()))
}

/// The gradient of the result, contiguous.
fn grad(g: &Tensor) -> CResult<Tensor> {
    g.contiguous()
}

/// The bias gradient: per-channel sums of the output gradient.
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "amun-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let [b, c, h, w] = dims4(l, self.name(), "dy")?;
        let v = conv::channel_sum(data(s, l, self.name(), "dy")?, b, c, h * w);
        Ok((CpuStorage::F32(v), Shape::from(c)))
    }
}

/// `(dy, y) → dy ⊙ [y > 0]`: the gradient through a ReLU whose output is `y`.
struct ReluMask;

impl CustomOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "amun-relu-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let op = self.name();
        if l1.dims() != l2.dims() {
            return Err(Error::Shape {
                op,
                arg: "y",
                expected: l1.dims().to_vec(),
                got: l2.dims().to_vec(),
            }
            .into());
        }
        let v = conv::relu_mask(data(s1, l1, op, "dy")?, data(s2, l2, op, "y")?);
        Ok((CpuStorage::F32(v), l1.shape().clone()))
    }
}

/// A convolution-like layer `(x, w[, bias]) → y` whose gradients are two more custom ops.
///
/// `conv_custom_ops!` makes it a [`CustomOp2`] `(x, w)` and a [`CustomOp3`] `(x, w, bias)`,
/// with the bias gradient the per-channel sum of the output gradient.
trait ConvLayer {
    /// The name of the op.
    const NAME: &'static str;
    /// `(dy, w) → dx`.
    type InputGrad: CustomOp2;
    /// `(x, dy) → dw`.
    type FilterGrad: CustomOp2;

    /// The sizes of one call.
    type Geom;

    /// Checks the dimensions of `x` and `w` and gives the sizes.
    fn geom(&self, x: [usize; 4], w: [usize; 4]) -> Result<Self::Geom, Error>;

    /// The number of output channels (the length of the bias).
    fn out_channels(g: &Self::Geom) -> usize;

    /// Whether a ReLU follows the layer inside the op (its output is `max(·, 0)` and the
    /// gradient is masked by `output > 0` before the layer's own backward pass).
    fn relu(&self) -> bool {
        false
    }

    /// The kernel: the output and its dimensions.
    fn forward(
        &self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        g: &Self::Geom,
    ) -> (Vec<f32>, [usize; 4]);

    /// The op giving the input gradient.
    fn input_grad(&self) -> Self::InputGrad;

    /// The op giving the gradient of the filter `w`.
    fn filter_grad(&self, w: &Tensor) -> CResult<Self::FilterGrad>;

    /// The forward pass on the arguments `x`, `w` and the optional bias.
    fn fwd(
        &self,
        (sx, lx): (&CpuStorage, &Layout),
        (sw, lw): (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> CResult<(CpuStorage, Shape)> {
        let op = Self::NAME;
        let g = self.geom(dims4(lx, op, "x")?, dims4(lw, op, "w")?)?;
        let bias = match b {
            Some((s, l)) => Some(bias(s, l, op, Self::out_channels(&g))?),
            None => None,
        };
        let (y, shape) = self.forward(data(sx, lx, op, "x")?, data(sw, lw, op, "w")?, bias, &g);
        Ok(out(y, shape))
    }

    /// The gradient of the layer's own output (before the fused ReLU, if any) from the op's
    /// output `res` and its gradient `g`.
    fn layer_grad(&self, res: &Tensor, g: &Tensor) -> CResult<Tensor> {
        let g = grad(g)?;
        if self.relu() {
            g.apply_op2_no_bwd(&res.contiguous()?, &ReluMask)
        } else {
            Ok(g)
        }
    }

    /// The gradients of `x` and `w` (`None` for those not tracked) from the layer's output
    /// gradient `g` (see [`ConvLayer::layer_grad`]).
    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let dx = if x.track_op() {
            Some(g.apply_op2_no_bwd(w, &self.input_grad())?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(g, &self.filter_grad(w)?)?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// Implements [`CustomOp2`] (`(x, w)`, no bias) and [`CustomOp3`] (`(x, w, bias)`) for each
/// [`ConvLayer`] type, by its `fwd` and `grads`.
macro_rules! conv_custom_ops {
    ($($t:ty),* $(,)?) => {$(
        impl CustomOp2 for $t {
            fn name(&self) -> &'static str {
                <$t as ConvLayer>::NAME
            }

            fn cpu_fwd(
                &self,
                s1: &CpuStorage,
                l1: &Layout,
                s2: &CpuStorage,
                l2: &Layout,
            ) -> CResult<(CpuStorage, Shape)> {
                self.fwd((s1, l1), (s2, l2), None)
            }

            fn bwd(
                &self,
                x: &Tensor,
                w: &Tensor,
                res: &Tensor,
                g: &Tensor,
            ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
                let g = self.layer_grad(res, g)?;
                self.grads(x, w, &g)
            }
        }

        impl CustomOp3 for $t {
            fn name(&self) -> &'static str {
                <$t as ConvLayer>::NAME
            }

            fn cpu_fwd(
                &self,
                s1: &CpuStorage,
                l1: &Layout,
                s2: &CpuStorage,
                l2: &Layout,
                s3: &CpuStorage,
                l3: &Layout,
            ) -> CResult<(CpuStorage, Shape)> {
                self.fwd((s1, l1), (s2, l2), Some((s3, l3)))
            }

            fn bwd(
                &self,
                x: &Tensor,
                w: &Tensor,
                b: &Tensor,
                res: &Tensor,
                g: &Tensor,
            ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
                let g = self.layer_grad(res, g)?;
                let (dx, dw) = self.grads(x, w, &g)?;
                let db = if b.track_op() {
                    Some(g.apply_op1_no_bwd(&ChannelSum)?)
                } else {
                    None
                };
                Ok((dx, dw, db))
            }
        }
    )*};
}

conv_custom_ops!(Conv2d, Up2x2);

/// Stride-1 convolution with zero padding, optional bias (argument 3), optionally followed by
/// a ReLU.
pub(crate) struct Conv2d {
    pub padding: usize,
    pub relu: bool,
}

impl ConvLayer for Conv2d {
    const NAME: &'static str = "amun-conv2d";
    type InputGrad = Conv2dInputGrad;
    type FilterGrad = Conv2dFilterGrad;

    type Geom = ConvGeom;

    fn geom(&self, x: [usize; 4], w: [usize; 4]) -> Result<ConvGeom, Error> {
        ConvGeom::new(Self::NAME, x, w, self.padding)
    }

    fn out_channels(g: &ConvGeom) -> usize {
        g.co
    }

    fn relu(&self) -> bool {
        self.relu
    }

    fn forward(
        &self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        g: &ConvGeom,
    ) -> (Vec<f32>, [usize; 4]) {
        (
            conv::forward(x, w, bias, self.relu, g),
            [g.b, g.co, g.ho, g.wo],
        )
    }

    fn input_grad(&self) -> Conv2dInputGrad {
        Conv2dInputGrad {
            padding: self.padding,
        }
    }

    fn filter_grad(&self, w: &Tensor) -> CResult<Conv2dFilterGrad> {
        Ok(Conv2dFilterGrad {
            padding: self.padding,
            k: w.dim(2)?,
        })
    }
}

/// `(dy, w) → dx` of [`Conv2d`].
struct Conv2dInputGrad {
    padding: usize,
}

impl CustomOp2 for Conv2dInputGrad {
    fn name(&self) -> &'static str {
        "amun-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let op = self.name();
        let [b, co, ho, wo] = dims4(l1, op, "dy")?;
        let wd @ [wco, ci, k, _] = dims4(l2, op, "w")?;
        if wco != co {
            return Err(Error::Dim {
                op,
                arg: "w",
                dim: 0,
                expected: co,
                got: wco,
            }
            .into());
        }
        let size = |o: usize| (o + k).checked_sub(1 + 2 * self.padding);
        let (Some(h), Some(w)) = (size(ho), size(wo)) else {
            return Err(Error::Kernel {
                op,
                kh: k,
                kw: wd[3],
                h: ho,
                w: wo,
                padding: self.padding,
            }
            .into());
        };
        let g = ConvGeom::new(op, [b, ci, h, w], wd, self.padding)?;
        let dx = conv::backward_input(data(s1, l1, op, "dy")?, data(s2, l2, op, "w")?, &g).ok_or(
            Error::Kernel {
                op,
                kh: k,
                kw: wd[3],
                h,
                w,
                padding: self.padding,
            },
        )?;
        Ok(out(dx, [b, ci, h, w]))
    }
}

/// `(x, dy) → dw` of [`Conv2d`].
struct Conv2dFilterGrad {
    padding: usize,
    k: usize,
}

impl CustomOp2 for Conv2dFilterGrad {
    fn name(&self) -> &'static str {
        "amun-conv2d-filter-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let op = self.name();
        let xd @ [_, ci, _, _] = dims4(l1, op, "x")?;
        let [_, co, _, _] = dims4(l2, op, "dy")?;
        let g = ConvGeom::new(op, xd, [co, ci, self.k, self.k], self.padding)?;
        let want = [g.b, g.co, g.ho, g.wo];
        if l2.dims() != want {
            return Err(Error::Shape {
                op,
                arg: "dy",
                expected: want.to_vec(),
                got: l2.dims().to_vec(),
            }
            .into());
        }
        let dw = conv::backward_filter(data(s1, l1, op, "x")?, data(s2, l2, op, "dy")?, &g);
        Ok(out(dw, [co, ci, self.k, self.k]))
    }
}

/// 2×2 stride-2 transposed convolution, optional bias (argument 3).
pub(crate) struct Up2x2;

impl ConvLayer for Up2x2 {
    const NAME: &'static str = "amun-conv-transpose2x2";
    type InputGrad = Up2x2InputGrad;
    type FilterGrad = Up2x2FilterGrad;

    type Geom = UpGeom;

    fn geom(&self, x: [usize; 4], w: [usize; 4]) -> Result<UpGeom, Error> {
        UpGeom::new(Self::NAME, x, w)
    }

    fn out_channels(g: &UpGeom) -> usize {
        g.co
    }

    fn forward(
        &self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        g: &UpGeom,
    ) -> (Vec<f32>, [usize; 4]) {
        (convt::forward(x, w, bias, g), [g.b, g.co, 2 * g.h, 2 * g.w])
    }

    fn input_grad(&self) -> Up2x2InputGrad {
        Up2x2InputGrad
    }

    fn filter_grad(&self, _w: &Tensor) -> CResult<Up2x2FilterGrad> {
        Ok(Up2x2FilterGrad)
    }
}

/// The geometry of an [`Up2x2`] from its output gradient `[B, C_out, 2H, 2W]` and filter.
fn up_geom_from_grad(op: &'static str, dy: [usize; 4], ci: usize, co: usize) -> CResult<UpGeom> {
    let [b, dco, h2, w2] = dy;
    if h2 % 2 != 0 || w2 % 2 != 0 {
        return Err(Error::OddSize { op, h: h2, w: w2 }.into());
    }
    Ok(
        UpGeom::new(op, [b, ci, h2 / 2, w2 / 2], [ci, co, 2, 2]).and_then(|g| {
            if dco == co {
                Ok(g)
            } else {
                Err(Error::Dim {
                    op,
                    arg: "dy",
                    dim: 1,
                    expected: co,
                    got: dco,
                })
            }
        })?,
    )
}

/// `(dy, w) → dx` of [`Up2x2`].
struct Up2x2InputGrad;

impl CustomOp2 for Up2x2InputGrad {
    fn name(&self) -> &'static str {
        "amun-conv-transpose2x2-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let op = self.name();
        let [ci, co, _, _] = dims4(l2, op, "w")?;
        let g = up_geom_from_grad(op, dims4(l1, op, "dy")?, ci, co)?;
        let dx = convt::backward_input(data(s1, l1, op, "dy")?, data(s2, l2, op, "w")?, &g);
        Ok(out(dx, [g.b, g.ci, g.h, g.w]))
    }
}

/// `(x, dy) → dw` of [`Up2x2`].
struct Up2x2FilterGrad;

impl CustomOp2 for Up2x2FilterGrad {
    fn name(&self) -> &'static str {
        "amun-conv-transpose2x2-filter-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let op = self.name();
        let [b, ci, h, w] = dims4(l1, op, "x")?;
        let [_, co, _, _] = dims4(l2, op, "dy")?;
        let g = up_geom_from_grad(op, dims4(l2, op, "dy")?, ci, co)?;
        if [g.b, g.h, g.w] != [b, h, w] {
            let expected = vec![b, co, 2 * h, 2 * w];
            return Err(Error::Shape {
                op,
                arg: "dy",
                expected,
                got: l2.dims().to_vec(),
            }
            .into());
        }
        let dw = convt::backward_filter(data(s1, l1, op, "x")?, data(s2, l2, op, "dy")?, &g);
        Ok(out(dw, [ci, co, 2, 2]))
    }
}

/// 2×2 max pooling, stride 2.
pub(crate) struct MaxPool2x2;

/// The pooling dimensions `[B, C, H, W]`, with even `H` and `W`.
fn pool_dims(l: &Layout, op: &'static str) -> CResult<[usize; 4]> {
    let d @ [_, _, h, w] = dims4(l, op, "x")?;
    if h % 2 != 0 || w % 2 != 0 {
        return Err(Error::OddSize { op, h, w }.into());
    }
    Ok(d)
}

impl CustomOp1 for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "amun-max-pool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let [b, c, h, w] = pool_dims(l, self.name())?;
        let y = pool::forward(data(s, l, self.name(), "x")?, b * c, h, w);
        Ok(out(y, [b, c, h / 2, w / 2]))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> CResult<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad(g)?, &MaxPool2x2Grad)?))
    }
}

/// `(x, dy) → dx` of [`MaxPool2x2`].
struct MaxPool2x2Grad;

impl CustomOp2 for MaxPool2x2Grad {
    fn name(&self) -> &'static str {
        "amun-max-pool2x2-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let op = self.name();
        let [b, c, h, w] = pool_dims(l1, op)?;
        let want = [b, c, h / 2, w / 2];
        if l2.dims() != want {
            return Err(Error::Shape {
                op,
                arg: "dy",
                expected: want.to_vec(),
                got: l2.dims().to_vec(),
            }
            .into());
        }
        let dx = pool::backward(data(s1, l1, op, "x")?, data(s2, l2, op, "dy")?, b * c, h, w);
        Ok(out(dx, [b, c, h, w]))
    }
}

/// Concatenation along the channel axis of two or three NCHW tensors of one batch size and
/// image size.
pub(crate) struct CatChannels;

impl CatChannels {
    const NAME: &'static str = "amun-cat-channels";

    /// The concatenation of the arguments; errors name the argument that does not fit.
    fn run(args: &[(&CpuStorage, &Layout)]) -> CResult<(CpuStorage, Shape)> {
        const NAMES: [&str; 3] = ["a", "b", "c"];
        let op = Self::NAME;
        let [b, _, h, w] = dims4(args[0].1, op, NAMES[0])?;
        let mut parts = Vec::with_capacity(args.len());
        for (&(s, l), name) in args.iter().zip(NAMES) {
            let d = dims4(l, op, name)?;
            if [d[0], d[2], d[3]] != [b, h, w] {
                return Err(Error::Shape {
                    op,
                    arg: name,
                    expected: vec![b, d[1], h, w],
                    got: d.to_vec(),
                }
                .into());
            }
            parts.push((data(s, l, op, name)?, d[1]));
        }
        let c = parts.iter().map(|&(_, c)| c).sum();
        Ok(out(crate::cat::forward(&parts, b, h * w), [b, c, h, w]))
    }

    /// The gradient of each argument: its channels of `g`, `None` where not tracked.
    fn grads<const N: usize>(args: [&Tensor; N], g: &Tensor) -> CResult<[Option<Tensor>; N]> {
        let g = grad(g)?;
        let mut start = 0;
        let mut out: [Option<Tensor>; N] = std::array::from_fn(|_| None);
        for (slot, a) in out.iter_mut().zip(args) {
            let len = a.dim(1)?;
            if a.track_op() {
                *slot = Some(g.apply_op1_no_bwd(&ChannelSlice { start, len })?);
            }
            start += len;
        }
        Ok(out)
    }
}

impl CustomOp2 for CatChannels {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        Self::run(&[(s1, l1), (s2, l2)])
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let [ga, gb] = Self::grads([a, b], g)?;
        Ok((ga, gb))
    }
}

impl CustomOp3 for CatChannels {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        Self::run(&[(s1, l1), (s2, l2), (s3, l3)])
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [ga, gb, gc] = Self::grads([a, b, c], g)?;
        Ok((ga, gb, gc))
    }
}

/// Channels `start..start + len` of an NCHW tensor (the gradient of [`CatChannels`]).
struct ChannelSlice {
    start: usize,
    len: usize,
}

impl CustomOp1 for ChannelSlice {
    fn name(&self) -> &'static str {
        "amun-channel-slice"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let op = self.name();
        let [b, c, h, w] = dims4(l, op, "x")?;
        if self.start + self.len > c {
            return Err(Error::Dim {
                op,
                arg: "x",
                dim: 1,
                expected: self.start + self.len,
                got: c,
            }
            .into());
        }
        let y = crate::cat::slice(data(s, l, op, "x")?, [b, c, h * w], self.start, self.len);
        Ok(out(y, [b, self.len, h, w]))
    }
}

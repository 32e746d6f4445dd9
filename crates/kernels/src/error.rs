//! Errors of the kernel layer.

/// What can go wrong when a layer function checks its arguments.
///
/// The public functions return [`candle_core::Result`], so these errors reach callers wrapped in
/// [`candle_core::Error::Wrapped`], with this type's message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor does not have the rank an operator needs.
    #[error("{op}: `{arg}` must have rank {expected}, got shape {got:?}")]
    Rank {
        /// The operator.
        op: &'static str,
        /// The argument name.
        arg: &'static str,
        /// The rank needed.
        expected: usize,
        /// The shape received.
        got: Vec<usize>,
    },
    /// A tensor does not have the shape an operator needs.
    #[error("{op}: `{arg}` must have shape {expected:?}, got {got:?}")]
    Shape {
        /// The operator.
        op: &'static str,
        /// The argument name.
        arg: &'static str,
        /// The shape needed.
        expected: Vec<usize>,
        /// The shape received.
        got: Vec<usize>,
    },
    /// Two tensors disagree on a dimension.
    #[error("{op}: `{arg}` dimension {dim} must be {expected}, got {got}")]
    Dim {
        /// The operator.
        op: &'static str,
        /// The argument name.
        arg: &'static str,
        /// The dimension index.
        dim: usize,
        /// The size needed.
        expected: usize,
        /// The size received.
        got: usize,
    },
    /// The convolution kernel is not square, or is larger than the padded input.
    #[error("{op}: kernel {kh}×{kw} does not fit input {h}×{w} with padding {padding}")]
    Kernel {
        /// The operator.
        op: &'static str,
        /// Kernel height.
        kh: usize,
        /// Kernel width.
        kw: usize,
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
        /// Padding on every side.
        padding: usize,
    },
    /// Max pooling needs even spatial sizes.
    #[error("{op} needs even height and width, got {h}×{w}")]
    OddSize {
        /// The operator.
        op: &'static str,
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
    },
    /// A custom op received a tensor whose memory is not contiguous (an internal invariant:
    /// the layer functions make their inputs contiguous first).
    #[error("{op}: argument `{arg}` is not contiguous")]
    NotContiguous {
        /// The operator.
        op: &'static str,
        /// The argument name.
        arg: &'static str,
    },
}

/// Result type of this crate's internal checks.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        candle_core::Error::wrap(e)
    }
}

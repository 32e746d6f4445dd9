//! Progress reporting from long operations.

/// Receives progress from long operations (training, tiled prediction, experiments).
///
/// Every method has a no-op default. The `amun` binary implements it with progress bars;
/// library users can log, or pass [`NoProgress`].
pub trait Progress: Sync {
    /// A new stage begins with `total` units of work (0 when unknown).
    fn start(&self, _stage: &str, _total: u64) {}
    /// `n` more units of the current stage are done.
    fn advance(&self, _n: u64) {}
    /// A one-line status message for the current stage (e.g. the last epoch's RMSE).
    fn message(&self, _msg: &str) {}
    /// The current stage is finished.
    fn finish(&self) {}
}

/// Ignores all progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

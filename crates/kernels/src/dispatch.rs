//! Which implementation a layer function runs: this crate's CPU kernels or candle's operators.
//!
//! The kernels are candle custom ops with CPU code only; on a CUDA (or Metal) device they must
//! step aside so that candle's own GPU kernels run. The choice is made from each tensor's
//! [`DeviceLocation`] and dtype, so it can be tested for a CUDA device on a machine without one.

use candle_core::{DType, DeviceLocation, Tensor};

use crate::{backend, Backend};

/// The implementation a layer function runs for a set of tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// This crate's CPU kernels (candle custom ops).
    Kernels,
    /// candle's built-in operators: its CUDA kernels on a GPU, its CPU code under
    /// [`Backend::Candle`] or for dtypes other than `f32`.
    Candle,
}

/// The implementation the layer functions choose for `tensors` under the backend selected
/// now ([`backend`]): [`Dispatch::Kernels`] only if every tensor is an `f32` tensor on the CPU
/// and [`Backend::Fast`] is selected.
///
/// ```
/// use amun_kernels::{dispatch, Dispatch};
/// use candle_core::{DType, Device, Tensor};
///
/// let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &Device::Cpu)?;
/// assert_eq!(dispatch(&[&x]), Dispatch::Kernels);
/// let x64 = x.to_dtype(DType::F64)?;
/// assert_eq!(dispatch(&[&x64]), Dispatch::Candle);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn dispatch(tensors: &[&Tensor]) -> Dispatch {
    dispatch_for(backend(), tensors.iter().copied())
}

/// [`dispatch`] with an explicit backend, over tensors of which some may be absent (a bias).
pub(crate) fn dispatch_for<'a>(
    backend: Backend,
    tensors: impl IntoIterator<Item = &'a Tensor>,
) -> Dispatch {
    decide(
        backend,
        tensors
            .into_iter()
            .map(|t| (t.device().location(), t.dtype())),
    )
}

/// The decision itself, from where each tensor lives and its dtype.
fn decide(backend: Backend, places: impl IntoIterator<Item = (DeviceLocation, DType)>) -> Dispatch {
    let cpu_f32 = |(loc, dtype): (DeviceLocation, DType)| {
        matches!(loc, DeviceLocation::Cpu) && dtype == DType::F32
    };
    if backend == Backend::Fast && places.into_iter().all(cpu_f32) {
        Dispatch::Kernels
    } else {
        Dispatch::Candle
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, DeviceLocation, Tensor, Var};

    use super::{decide, dispatch_for, Dispatch};
    use crate::{max_pool2x2_with, Backend};

    const CUDA0: DeviceLocation = DeviceLocation::Cuda { gpu_id: 0 };

    #[test]
    fn cuda_tensors_take_candles_path() {
        // A CUDA device cannot be created without a GPU: the decision is tested on the
        // location a CUDA tensor reports (`Device::location`).
        for backend in [Backend::Fast, Backend::Candle] {
            assert_eq!(decide(backend, [(CUDA0, DType::F32)]), Dispatch::Candle);
            assert_eq!(
                decide(backend, [(DeviceLocation::Cuda { gpu_id: 3 }, DType::F32)]),
                Dispatch::Candle
            );
            assert_eq!(
                decide(backend, [(DeviceLocation::Metal { gpu_id: 0 }, DType::F32)]),
                Dispatch::Candle
            );
        }
        // One CUDA tensor among CPU ones is enough to leave the CPU kernels.
        let mixed = [
            (DeviceLocation::Cpu, DType::F32),
            (CUDA0, DType::F32),
            (DeviceLocation::Cpu, DType::F32),
        ];
        assert_eq!(decide(Backend::Fast, mixed), Dispatch::Candle);
    }

    #[test]
    fn cpu_f32_tensors_take_the_kernels_under_fast_only() {
        let cpu = [(DeviceLocation::Cpu, DType::F32); 3];
        assert_eq!(decide(Backend::Fast, cpu), Dispatch::Kernels);
        assert_eq!(decide(Backend::Candle, cpu), Dispatch::Candle);
        for dtype in [DType::F64, DType::F16, DType::BF16] {
            assert_eq!(
                decide(Backend::Fast, [(DeviceLocation::Cpu, dtype)]),
                Dispatch::Candle,
                "{dtype:?}"
            );
        }
    }

    #[test]
    fn real_cpu_tensors_are_dispatched_by_their_device_and_dtype() {
        let x = Tensor::zeros((1, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::zeros((3, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(dispatch_for(Backend::Fast, [&x, &w]), Dispatch::Kernels);
        let w64 = w.to_dtype(DType::F64).unwrap();
        assert_eq!(dispatch_for(Backend::Fast, [&x, &w64]), Dispatch::Candle);
        assert_eq!(dispatch_for(Backend::Candle, [&x, &w]), Dispatch::Candle);
    }

    #[test]
    fn layer_functions_follow_the_dispatch() {
        // The two paths differ observably on tied maxima: this crate's pooling sends the
        // gradient to the first maximum of a window (as PyTorch), candle's reshape-and-max to
        // every tied one. A window of four equal values tells which path ran.
        for (dtype, want) in [
            (DType::F32, Dispatch::Kernels),
            (DType::F64, Dispatch::Candle),
        ] {
            let x = Var::from_tensor(&Tensor::ones((1, 1, 2, 2), dtype, &Device::Cpu).unwrap())
                .unwrap();
            assert_eq!(dispatch_for(Backend::Fast, [x.as_tensor()]), want);
            let y = max_pool2x2_with(Backend::Fast, x.as_tensor()).unwrap();
            let g = y.sum_all().unwrap().backward().unwrap();
            let g: Vec<f64> = g
                .get(x.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap();
            let receivers = g.iter().filter(|&&v| v > 0.0).count();
            let ran = if receivers == 1 {
                Dispatch::Kernels
            } else {
                Dispatch::Candle
            };
            assert_eq!(ran, want, "{dtype:?}: gradient {g:?}");
        }
    }
}

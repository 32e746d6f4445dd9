//! Where tensors live: the CPU or an NVIDIA GPU, named as on the command line.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where tensors live: `cpu` (the default), `cuda` (the first GPU) or `cuda:N`.
///
/// Parsed from and written as those strings (in a TOML or JSON configuration too).
///
/// ```
/// use amun_net::DeviceSpec;
///
/// assert_eq!("cuda:1".parse::<DeviceSpec>()?, DeviceSpec::Cuda(1));
/// assert_eq!("cuda".parse::<DeviceSpec>()?, DeviceSpec::Cuda(0));
/// assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
/// assert!(DeviceSpec::Cpu.device().is_ok());
/// # Ok::<(), amun_net::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The CPU (default).
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal (needs the `cuda` feature).
    Cuda(usize),
}

impl DeviceSpec {
    /// The candle device.
    ///
    /// # Errors
    /// [`Error::NoCudaSupport`] if CUDA was asked for in a build without the `cuda` feature;
    /// [`Error::Device`], wrapping CUDA's error, if the GPU cannot be opened (no GPU or
    /// driver, or no GPU of that ordinal).
    pub fn device(&self) -> Result<Device> {
        match *self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(_) if !cfg!(feature = "cuda") => {
                Err(Error::NoCudaSupport { device: *self })
            }
            DeviceSpec::Cuda(i) => Device::new_cuda(i).map_err(|source| Error::Device {
                device: *self,
                source,
            }),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = Error;

    /// Parses `cpu`, `cuda` (GPU 0) or `cuda:N` (case and surrounding spaces ignored).
    fn from_str(s: &str) -> Result<Self> {
        let name = s.trim().to_ascii_lowercase();
        let bad = || {
            Error::config(
                "device",
                format!("expected `cpu`, `cuda` or `cuda:N` (N a GPU number), got `{s}`"),
            )
        };
        match name.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                let n = name.strip_prefix("cuda:").ok_or_else(bad)?;
                n.parse().map(DeviceSpec::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Module, Tensor};

    use super::DeviceSpec;
    use crate::config::AmunConfig;
    use crate::error::Error;
    use crate::init::SeededVarMap;
    use crate::model::Amun;

    /// A small AMUN's output and its first-layer weight gradient for a seeded input, computed
    /// on `dev` and brought back to the CPU.
    fn forward_and_gradient(dev: &Device) -> (Vec<f32>, Vec<f32>) {
        let cfg = AmunConfig {
            channels: 4,
            rdb_growth: 3,
            unet_widths: vec![4, 6],
            unet_bridge: 8,
            ..AmunConfig::small()
        };
        // Seeded initial values are drawn on the CPU, so both devices get the same weights.
        let map = SeededVarMap::new(7);
        let model = Amun::new(&cfg, map.var_builder(dev)).unwrap();
        let n = (1 + cfg.n_aux()) * 16 * 16;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let x = Tensor::from_vec(x, (1, 1 + cfg.n_aux(), 16, 16), dev).unwrap(); // [B, C, H, W]
        let y = model.forward(&x).unwrap(); // [B, 1, H, W]
        let grads = y.sqr().unwrap().mean_all().unwrap().backward().unwrap();
        let (_, first) = map.sorted_vars().into_iter().next().unwrap();
        let g = grads.get(first.as_tensor()).unwrap();
        let flat = |t: &Tensor| -> Vec<f32> {
            t.to_device(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        (flat(&y), flat(g))
    }

    #[test]
    fn the_model_runs_forward_and_backward_on_the_cpu_device() {
        // The helper the GPU test below compares with: finite values, one per pixel.
        let (y, g) = forward_and_gradient(&DeviceSpec::Cpu.device().unwrap());
        assert_eq!(y.len(), 16 * 16);
        assert!(y.iter().chain(&g).all(|v| v.is_finite()));
        assert!(
            g.iter().any(|&v| v != 0.0),
            "gradient reaches the first layer"
        );
    }

    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs an NVIDIA GPU: cargo test -p amun-net --features cuda -- --ignored"]
    fn the_model_on_a_gpu_matches_the_cpu() {
        // On the GPU candle's CUDA operators run (amun-kernels steps aside); the reference is
        // the same model on the CPU with this crate's kernels, to f32 rounding.
        let gpu = DeviceSpec::Cuda(0).device().unwrap();
        let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &gpu).unwrap();
        assert_eq!(
            amun_kernels::dispatch(&[&x]),
            amun_kernels::Dispatch::Candle
        );
        let (yc, gc) = forward_and_gradient(&Device::Cpu);
        let (yg, gg) = forward_and_gradient(&gpu);
        for (name, a, b) in [("output", &yc, &yg), ("gradient", &gc, &gg)] {
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            let worst = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(
                worst <= 1e-4 * scale,
                "{name}: max |cpu - gpu| {worst}, scale {scale}"
            );
        }
    }

    #[test]
    fn parses_the_three_forms_and_round_trips() {
        let cases = [
            ("cpu", DeviceSpec::Cpu),
            ("CPU", DeviceSpec::Cpu),
            (" cuda ", DeviceSpec::Cuda(0)),
            ("cuda:0", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
            ("CUDA:12", DeviceSpec::Cuda(12)),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), want, "{s:?}");
            assert_eq!(want.to_string().parse::<DeviceSpec>().unwrap(), want);
        }
        assert_eq!(DeviceSpec::default(), DeviceSpec::Cpu);
    }

    #[test]
    fn rejects_other_names_with_the_value_at_fault() {
        for s in [
            "", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda0", "cuda:1:2", "metal:0",
        ] {
            match s.parse::<DeviceSpec>() {
                Err(Error::InvalidConfig { field, detail }) => {
                    assert_eq!(field, "device");
                    assert!(detail.contains(&format!("`{s}`")), "{detail}");
                }
                other => panic!("{s:?}: expected an invalid-setting error, got {other:?}"),
            }
        }
    }

    #[test]
    fn serialises_as_its_name_in_json_and_toml() {
        // The configuration files and the checkpoint's metadata store the device as text.
        let json = serde_json::to_string(&DeviceSpec::Cuda(2)).unwrap();
        assert_eq!(json, r#""cuda:2""#);
        let back: DeviceSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, DeviceSpec::Cuda(2));
        #[derive(serde::Deserialize)]
        struct T {
            device: DeviceSpec,
        }
        let t: T = toml::from_str(r#"device = "cuda:1""#).unwrap();
        assert_eq!(t.device, DeviceSpec::Cuda(1));
        let bad = toml::from_str::<T>(r#"device = "tpu""#).err().unwrap();
        assert!(bad.to_string().contains("`tpu`"), "{bad}");
    }

    #[test]
    fn cpu_is_always_available() {
        assert!(DeviceSpec::Cpu.device().unwrap().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_rebuild() {
        let e = DeviceSpec::Cuda(0).device().unwrap_err();
        assert!(
            matches!(
                e,
                Error::NoCudaSupport {
                    device: DeviceSpec::Cuda(0)
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "device cuda:0 unavailable: built without the `cuda` feature: rebuild with \
             `cargo build --release -p amun-cli --features cuda`"
        );
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn a_missing_gpu_is_an_error_naming_the_device_asked_for() {
        // No machine has GPU number 999: opening it fails in CUDA (no device, or an invalid
        // ordinal), and the error names what was asked and wraps CUDA's.
        let e = DeviceSpec::Cuda(999).device().unwrap_err();
        match &e {
            Error::Device { device, .. } => assert_eq!(*device, DeviceSpec::Cuda(999)),
            other => panic!("expected Error::Device, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(msg.starts_with("device cuda:999 unavailable: "), "{msg}");
        assert!(std::error::Error::source(&e).is_some());
    }
}

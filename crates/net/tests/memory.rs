//! The peak of live tensor data during inference, measured with a counting allocator,
//! against [`Amun::peak_values_per_pixel`] — the estimate that sizes the windows of
//! `amun downscale --max-memory`.
//!
//! One test in its own binary: the allocator counts every thread of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use amun_net::{Amun, AmunConfig, SeededVarMap};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// only arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; `ptr` came from this allocator with this layout.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The network with plain weight tensors (no autograd), as inference builds it.
fn model(cfg: &AmunConfig) -> Amun {
    let map = SeededVarMap::new(3);
    Amun::new(cfg, map.var_builder(&Device::Cpu)).unwrap();
    let tensors: HashMap<String, Tensor> = map
        .sorted_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().detach()))
        .collect();
    Amun::new(
        cfg,
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
    )
    .unwrap()
}

/// Bytes allocated at the peak of one forward pass beyond what was in use before it,
/// input included.
fn measured_peak(m: &Amun, channels: usize, side: usize) -> usize {
    let input = || Tensor::ones((1, channels, side, side), DType::F32, &Device::Cpu).unwrap();
    // A first pass sizes every thread's kernel scratch buffers.
    drop(m.forward(&input()).unwrap());
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let x = input();
    let y = m.forward(&x).unwrap();
    drop((x, y));
    PEAK.load(Ordering::Relaxed) - before
}

#[test]
fn the_estimate_is_the_measured_peak() {
    let tiny = AmunConfig {
        channels: 8,
        rdb_growth: 8,
        unet_widths: vec![8, 16],
        unet_bridge: 32,
        ..AmunConfig::small()
    };
    for (name, cfg, side) in [
        ("tiny", tiny.clone(), 128),
        (
            "tiny without FFRDB",
            tiny.with_ablation(amun_net::Ablation::GmfcaUnet),
            128,
        ),
        ("small", AmunConfig::small(), 256),
    ] {
        let m = model(&cfg);
        let peak = measured_peak(&m, 1 + cfg.n_aux(), side) as f64;
        let estimate = 4.0 * Amun::peak_values_per_pixel(&cfg) * (side * side) as f64;
        // The estimate counts tensor data only; candle's tensor headers and the kernels'
        // small per-call buffers come on top.
        let ratio = peak / estimate;
        println!("{name}: measured {peak:.0} B, estimated {estimate:.0} B, ratio {ratio:.3}");
        assert!(
            (0.97..1.10).contains(&ratio),
            "{name}: measured peak {peak:.0} B against the estimate {estimate:.0} B"
        );
    }
}

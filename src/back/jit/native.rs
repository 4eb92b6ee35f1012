//! Row kernels, run natively: losses fused with their gradients, softmax, maxout, dropout masks.
//!
//! These are small (they touch the narrow output layer or one value per unit), so they are
//! plain Rust loops; they repeat the interpreter's arithmetic in the same order.

use crate::ir::DropoutMode;
use crate::ops::activation::sigmoid;
use crate::rng;

/// Softmax cross-entropy over `rows x cols` logits: returns the mean loss; writes the
/// probabilities and `(p - t) / rows` when asked.
pub fn softmax_cross_entropy(
    z: &[f32],
    t: &[f32],
    rows: usize,
    cols: usize,
    probs: Option<&mut [f32]>,
    grad: Option<&mut [f32]>,
) -> f64 {
    let mut total = 0.0f64;
    let mut p = vec![0.0f32; cols];
    let mut probs = probs;
    let mut grad = grad;
    let n = rows.max(1) as f32;
    for r in 0..rows {
        let zr = &z[r * cols..(r + 1) * cols];
        let tr = &t[r * cols..(r + 1) * cols];
        let m32 = zr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let m = m32 as f64;
        let lse = m + zr.iter().map(|&e| (e as f64 - m).exp()).sum::<f64>().ln();
        for (&ze, &te) in zr.iter().zip(tr) {
            if te != 0.0 {
                total += te as f64 * (lse - ze as f64);
            }
        }
        for (pe, &ze) in p.iter_mut().zip(zr) {
            *pe = (ze - m32).exp();
        }
        let s: f32 = p.iter().sum();
        for pe in p.iter_mut() {
            *pe /= s;
        }
        if let Some(out) = probs.as_deref_mut() {
            out[r * cols..(r + 1) * cols].copy_from_slice(&p);
        }
        if let Some(g) = grad.as_deref_mut() {
            for ((ge, &pe), &te) in g[r * cols..(r + 1) * cols].iter_mut().zip(&p).zip(tr) {
                *ge = (pe - te) / n;
            }
        }
    }
    total / rows.max(1) as f64
}

/// Sigmoid cross-entropy: mean over all elements; gradient `(sigmoid(z) - t) / len`.
pub fn sigmoid_cross_entropy(z: &[f32], t: &[f32], grad: Option<&mut [f32]>) -> f64 {
    let mut total = 0.0f64;
    for (&ze, &te) in z.iter().zip(t) {
        let (ze, te) = (ze as f64, te as f64);
        total += ze.max(0.0) - ze * te + (-ze.abs()).exp().ln_1p();
    }
    let n = z.len().max(1) as f32;
    if let Some(g) = grad {
        for ((ge, &ze), &te) in g.iter_mut().zip(z).zip(t) {
            *ge = (sigmoid(ze as f64) as f32 - te) / n;
        }
    }
    total / z.len().max(1) as f64
}

/// Mean squared error over all elements; gradient `2 (y - t) / len`.
pub fn mean_squared_error(y: &[f32], t: &[f32], grad: Option<&mut [f32]>) -> f64 {
    let mut total = 0.0f64;
    for (&ye, &te) in y.iter().zip(t) {
        let d = (ye - te) as f64;
        total += d * d;
    }
    let n = y.len().max(1) as f32;
    if let Some(g) = grad {
        for ((ge, &ye), &te) in g.iter_mut().zip(y).zip(t) {
            *ge = 2.0 * (ye - te) / n;
        }
    }
    total / y.len().max(1) as f64
}

/// Row softmax.
pub fn softmax(x: &[f32], out: &mut [f32], rows: usize, cols: usize) {
    for r in 0..rows {
        let xr = &x[r * cols..(r + 1) * cols];
        let or = &mut out[r * cols..(r + 1) * cols];
        let m = xr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for (o, &e) in or.iter_mut().zip(xr) {
            *o = (e - m).exp();
        }
        let s: f32 = or.iter().sum();
        for o in or.iter_mut() {
            *o /= s;
        }
    }
}

/// Softmax backward: `y * (dy - rowsum(dy * y))`.
pub fn softmax_grad(y: &[f32], dy: &[f32], out: &mut [f32], rows: usize, cols: usize) {
    for r in 0..rows {
        let range = r * cols..(r + 1) * cols;
        let (yr, gr) = (&y[range.clone()], &dy[range.clone()]);
        let dot = yr.iter().zip(gr).fold(0.0f32, |acc, (&a, &b)| acc + a * b);
        for ((o, &ye), &ge) in out[range].iter_mut().zip(yr).zip(gr) {
            *o = ye * (ge - dot);
        }
    }
}

/// Maxout forward: the largest of each group, and which one won (first on ties).
pub fn maxout(x: &[f32], out: &mut [f32], winners: &mut [u32], rows: usize, units: usize, pieces: usize) {
    let outs = units / pieces;
    for r in 0..rows {
        for j in 0..outs {
            let group = &x[r * units + j * pieces..r * units + (j + 1) * pieces];
            let mut best = 0;
            for k in 1..pieces {
                if group[k] > group[best] {
                    best = k;
                }
            }
            out[r * outs + j] = group[best];
            winners[r * outs + j] = best as u32;
        }
    }
}

/// Maxout backward: each gradient goes to its group's winner.
pub fn maxout_grad(winners: &[u32], dy: &[f32], out: &mut [f32], rows: usize, units: usize, pieces: usize) {
    let outs = units / pieces;
    out[..rows * units].fill(0.0);
    for r in 0..rows {
        for j in 0..outs {
            out[r * units + j * pieces + winners[r * outs + j] as usize] = dy[r * outs + j];
        }
    }
}

/// Dropout multipliers, the interpreter's masks exactly.
#[allow(clippy::too_many_arguments)]
pub fn dropout_mask(
    out: &mut [f32],
    rows: usize,
    cols: usize,
    rate: f64,
    mode: DropoutMode,
    layer: usize,
    seed: u64,
    step: u64,
    training: bool,
) {
    let out = &mut out[..rows * cols];
    if training {
        let keep = match mode {
            DropoutMode::Inverted => (1.0 / (1.0 - rate)) as f32,
            DropoutMode::ScaleAtTest => 1.0,
        };
        for (i, o) in out.iter_mut().enumerate() {
            *o = if rng::dropout_keep(seed, layer, step, i as u64, rate as f32) {
                keep
            } else {
                0.0
            };
        }
    } else {
        let scale = match mode {
            DropoutMode::Inverted => 1.0,
            DropoutMode::ScaleAtTest => (1.0 - rate) as f32,
        };
        out.fill(scale);
    }
}

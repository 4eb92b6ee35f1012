//! The channel ops on NCHW rows, as `ops::channels` defines them: per-channel rows repeated over
//! positions, their sums back, concatenation along channels and its slices. Copies, and sums in
//! the reference's order, so these agree with the interpreter bit for bit.

use super::nodes::{Cx, by_rows};
use crate::ops::ChannelOp;

/// Runs a channel op into `out`.
pub(super) fn run(cx: &Cx, op: &ChannelOp, out: &mut [f32]) {
    match *op {
        ChannelOp::Expand { x, spatial } => {
            let x = cx.value(x);
            for (o, &v) in out.chunks_exact_mut(spatial).zip(x) {
                o.fill(v);
            }
        }
        ChannelOp::SumSpatial { x, spatial } => {
            let x = cx.value(x);
            for (o, block) in out.iter_mut().zip(x.chunks_exact(spatial)) {
                let mut sum = 0.0f32;
                for &v in block {
                    sum += v;
                }
                *o = sum;
            }
        }
        ChannelOp::Concat {
            ref parts,
            ref channels,
            spatial,
        } => {
            let parts: Vec<(&[f32], usize)> = parts
                .iter()
                .zip(channels)
                .map(|(&part, &c)| (cx.value(part), c * spatial))
                .collect();
            let cols: usize = parts.iter().map(|&(_, len)| len).sum();
            let rows = out.len() / cols.max(1);
            by_rows(cx.pair, rows, out, cols, &|range, out| {
                for (o, r) in out.chunks_exact_mut(cols).zip(range) {
                    let mut at = 0;
                    for &(part, len) in &parts {
                        o[at..at + len].copy_from_slice(&part[r * len..][..len]);
                        at += len;
                    }
                }
            });
        }
        ChannelOp::Slice {
            x,
            start,
            channels,
            total,
            spatial,
        } => {
            let x = cx.value(x);
            let (len, stride) = (channels * spatial, total * spatial);
            let rows = out.len() / len.max(1);
            by_rows(cx.pair, rows, out, len, &|range, out| {
                for (o, r) in out.chunks_exact_mut(len).zip(range) {
                    o.copy_from_slice(&x[r * stride + start * spatial..][..len]);
                }
            });
        }
    }
}

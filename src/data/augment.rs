//! Augmentation of training images: random translations and left-right mirroring.
//!
//! Each sample's transformation is a pure function of the seed, the epoch and the sample's row
//! (never of the batch it lands in or the thread that builds it), so a run resumed mid-epoch, or
//! on another machine, sees the same images.

use super::Normalization;
use crate::ir::Augment;
use crate::rng::{hash, streams};
use ndarray::{Array2, ArrayView2};

/// The transformation drawn for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    /// Rows the image moves down (negative: up).
    pub dy: isize,
    /// Columns the image moves right (negative: left).
    pub dx: isize,
    /// Mirrored left-right (before the translation).
    pub flip: bool,
}

impl Draw {
    /// The transformation of training row `row` in `epoch`.
    pub fn of(augment: Augment, seed: u64, epoch: usize, row: usize) -> Draw {
        let h = hash(seed, streams::AUGMENT + epoch as u64, row as u64);
        let span = 2 * augment.shift as u64 + 1;
        // Three independent fields of one 64-bit hash: 24 bits per offset, one for the flip.
        let offset = |bits: u64| ((bits & 0xFF_FFFF) % span) as isize - augment.shift as isize;
        Draw {
            dy: offset(h),
            dx: offset(h >> 24),
            flip: augment.flip && (h >> 63) == 1,
        }
    }
}

/// Rows `rows` of `features` (samples of `channels x height x width` values, row-major, already
/// normalized by `normalization`), each transformed by its [`Draw`]. Pixels moved in from outside
/// the frame are the raw value 0 (black), normalized like the rest.
pub fn batch(
    features: ArrayView2<f32>,
    rows: &[usize],
    image: (usize, usize, usize),
    normalization: &Normalization,
    augment: Augment,
    seed: u64,
    epoch: usize,
) -> Array2<f32> {
    let (channels, height, width) = image;
    let plane = height * width;
    debug_assert_eq!(features.ncols(), channels * plane);
    let fill: Vec<f32> = normalization
        .shift
        .iter()
        .zip(&normalization.scale)
        .map(|(&s, &k)| (0.0 - s) * k)
        .collect();
    let mut out = Array2::<f32>::zeros((rows.len(), channels * plane));
    for (mut target, &row) in out.rows_mut().into_iter().zip(rows) {
        let draw = Draw::of(augment, seed, epoch, row);
        let source = features.row(row);
        let target = target.as_slice_mut().expect("a fresh array is contiguous");
        for y in 0..height {
            let sy = y as isize - draw.dy;
            for x in 0..width {
                let moved = x as isize - draw.dx;
                let sx = if draw.flip { width as isize - 1 - moved } else { moved };
                let inside = (0..height as isize).contains(&sy) && (0..width as isize).contains(&sx);
                for c in 0..channels {
                    let at = c * plane + y * width + x;
                    target[at] = if inside {
                        source[c * plane + sy as usize * width + sx as usize]
                    } else {
                        fill[at]
                    };
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn shift_only(shift: usize) -> Augment {
        Augment { shift, flip: false }
    }

    #[test]
    fn draws_cover_every_offset_and_are_reproducible() {
        let a = Augment { shift: 2, flip: true };
        let draws: Vec<Draw> = (0..2000).map(|r| Draw::of(a, 7, 3, r)).collect();
        for d in -2..=2 {
            assert!(draws.iter().any(|x| x.dy == d), "dy {d} never drawn");
            assert!(draws.iter().any(|x| x.dx == d), "dx {d} never drawn");
        }
        let flips = draws.iter().filter(|x| x.flip).count();
        assert!((800..1200).contains(&flips), "{flips} flips in 2000");
        assert!(draws.iter().all(|x| x.dy.abs() <= 2 && x.dx.abs() <= 2));
        assert_eq!(draws[17], Draw::of(a, 7, 3, 17));
        // Another epoch draws other transformations.
        let next: Vec<Draw> = (0..2000).map(|r| Draw::of(a, 7, 4, r)).collect();
        assert_ne!(draws, next);
    }

    #[test]
    fn shift_zero_without_flip_is_the_identity() {
        let f = Array2::from_shape_fn((3, 2 * 4 * 5), |(r, c)| (r * 100 + c) as f32);
        let out = batch(
            f.view(),
            &[2, 0],
            (2, 4, 5),
            &Normalization::identity(40),
            shift_only(0),
            1,
            0,
        );
        assert_eq!(out.row(0), f.row(2));
        assert_eq!(out.row(1), f.row(0));
    }

    #[test]
    fn a_translation_moves_every_channel_and_fills_with_normalized_black() {
        let (c, h, w) = (2, 5, 6);
        let f = Array2::from_shape_fn((40, c * h * w), |(r, i)| (r * 1000 + i + 1) as f32);
        let norm = Normalization {
            shift: vec![0.5; c * h * w],
            scale: vec![2.0; c * h * w],
        };
        let a = shift_only(2);
        let rows: Vec<usize> = (0..40).collect();
        let out = batch(f.view(), &rows, (c, h, w), &norm, a, 9, 1);
        let mut moved = 0;
        for r in rows {
            let d = Draw::of(a, 9, 1, r);
            moved += usize::from(d.dx != 0 || d.dy != 0);
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let (sy, sx) = (y as isize - d.dy, x as isize - d.dx);
                        let want = if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) {
                            f[[r, ch * h * w + sy as usize * w + sx as usize]]
                        } else {
                            -1.0
                        };
                        assert_eq!(out[[r, ch * h * w + y * w + x]], want, "row {r} {d:?} at {ch},{y},{x}");
                    }
                }
            }
        }
        assert!(moved > 30, "only {moved} of 40 samples moved");
    }

    #[test]
    fn a_flip_mirrors_left_right() {
        let (h, w) = (3, 4);
        let f = Array2::from_shape_fn((64, h * w), |(r, i)| (r * 100 + i) as f32);
        let a = Augment { shift: 0, flip: true };
        let rows: Vec<usize> = (0..64).collect();
        let out = batch(f.view(), &rows, (1, h, w), &Normalization::identity(h * w), a, 3, 0);
        let mut flipped = 0;
        for r in rows {
            let d = Draw::of(a, 3, 0, r);
            for y in 0..h {
                for x in 0..w {
                    let sx = if d.flip { w - 1 - x } else { x };
                    assert_eq!(out[[r, y * w + x]], f[[r, y * w + sx]]);
                }
            }
            flipped += usize::from(d.flip);
        }
        assert!((16..48).contains(&flipped));
    }
}

//! The geometry of a sliding window over images (convolutions and pooling), in NCHW.
//!
//! One rule for every backend and the checker: output size `floor((in + before + after - k) / s) + 1`
//! per axis, where `valid` pads nothing, `same` pads so that the output is `ceil(in / s)` (the
//! extra row or column of an odd total goes after, as ONNX's `SAME_UPPER` and TensorFlow), and
//! `N` pads N on every side.

/// How a window op pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Padding {
    /// No padding: the window stays inside the image.
    Valid,
    /// The output is `ceil(in / stride)` along each axis.
    Same,
    /// The same number of rows and columns on every side.
    Explicit(usize),
}

impl Padding {
    /// As written in specs.
    pub fn describe(self) -> String {
        match self {
            Padding::Valid => "valid".to_string(),
            Padding::Same => "same".to_string(),
            Padding::Explicit(n) => n.to_string(),
        }
    }

    /// `(before, after)` along one axis of size `size` for a window `k` with stride `s`.
    pub fn amounts(self, size: usize, k: usize, s: usize) -> (usize, usize) {
        match self {
            Padding::Valid => (0, 0),
            Padding::Explicit(n) => (n, n),
            Padding::Same => {
                let out = size.div_ceil(s.max(1));
                let total = ((out.saturating_sub(1)) * s + k).saturating_sub(size);
                (total / 2, total - total / 2)
            }
        }
    }
}

/// One axis of a window op: the arithmetic the checker shows when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// Input size.
    pub size: usize,
    /// Window size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding before.
    pub before: usize,
    /// Padding after.
    pub after: usize,
}

impl Axis {
    /// The output size, or `None` when the window does not fit once (empty or negative).
    pub fn output(&self) -> Option<usize> {
        let padded = self.size + self.before + self.after;
        (padded >= self.kernel && self.stride > 0).then(|| (padded - self.kernel) / self.stride + 1)
    }

    /// The output size as a signed number (0 or negative when it does not fit), for messages.
    pub fn signed_output(&self) -> i64 {
        let padded = (self.size + self.before + self.after) as i64;
        (padded - self.kernel as i64).div_euclid(self.stride.max(1) as i64) + 1
    }

    /// `(4 - 5 + 2*0) / 1 + 1 = 0`: the arithmetic as a user can check it.
    pub fn arithmetic(&self) -> String {
        let pad = if self.before == self.after {
            format!("2*{}", self.before)
        } else {
            format!("{}+{}", self.before, self.after)
        };
        format!(
            "({} - {} + {pad}) / {} + 1 = {}",
            self.size,
            self.kernel,
            self.stride,
            self.signed_output()
        )
    }
}

/// A window op's full geometry over one sample: `channels x height x width` in, `channels x
/// out_h x out_w` out (for a convolution the output channels are its filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Window {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window height.
    pub kernel_h: usize,
    /// Window width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Rows of padding above.
    pub pad_top: usize,
    /// Columns of padding on the left.
    pub pad_left: usize,
    /// Rows of padding below.
    pub pad_bottom: usize,
    /// Columns of padding on the right.
    pub pad_right: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Window {
    /// The two axes of a square window `k` with stride `s` over `[channels, height, width]`.
    pub fn axes(height: usize, width: usize, k: usize, s: usize, padding: Padding) -> [Axis; 2] {
        [height, width].map(|size| {
            let (before, after) = padding.amounts(size, k, s);
            Axis {
                size,
                kernel: k,
                stride: s,
                before,
                after,
            }
        })
    }

    /// The geometry, or the failing axis (0 = height, 1 = width) and its arithmetic.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        k: usize,
        s: usize,
        padding: Padding,
    ) -> Result<Window, (usize, Axis)> {
        let [h, w] = Window::axes(height, width, k, s, padding);
        let out_h = h.output().ok_or((0, h))?;
        let out_w = w.output().ok_or((1, w))?;
        Ok(Window {
            channels,
            height,
            width,
            kernel_h: k,
            kernel_w: k,
            stride_h: s,
            stride_w: s,
            pad_top: h.before,
            pad_left: w.before,
            pad_bottom: h.after,
            pad_right: w.after,
            out_h,
            out_w,
        })
    }

    /// A window covering the whole image once (global pooling).
    pub fn global(channels: usize, height: usize, width: usize) -> Window {
        Window {
            channels,
            height,
            width,
            kernel_h: height,
            kernel_w: width,
            stride_h: 1,
            stride_w: 1,
            pad_top: 0,
            pad_left: 0,
            pad_bottom: 0,
            pad_right: 0,
            out_h: 1,
            out_w: 1,
        }
    }

    /// Values of one input sample (`channels * height * width`).
    pub fn input_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Output positions per channel (`out_h * out_w`).
    pub fn positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Values one window covers in one channel (`kernel_h * kernel_w`).
    pub fn taps(&self) -> usize {
        self.kernel_h * self.kernel_w
    }

    /// The input row of output row `oy` and window row `ky`, if inside the image (not padding).
    pub fn input_y(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride_h + ky)
            .checked_sub(self.pad_top)
            .filter(|&y| y < self.height)
    }

    /// The input column of output column `ox` and window column `kx`, if inside the image.
    pub fn input_x(&self, ox: usize, kx: usize) -> Option<usize> {
        (ox * self.stride_w + kx)
            .checked_sub(self.pad_left)
            .filter(|&x| x < self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_the_one_rule() {
        // LeNet: 28 -> 24 (valid 5), 24 -> 12 (pool 2).
        assert_eq!(Window::new(1, 28, 28, 5, 1, Padding::Valid).map(|w| w.out_h), Ok(24));
        assert_eq!(Window::new(6, 24, 24, 2, 2, Padding::Valid).map(|w| w.out_w), Ok(12));
        // Same: ceil(in / s), the odd row after.
        let w = Window::new(3, 7, 7, 3, 2, Padding::Same).expect("fits");
        assert_eq!((w.out_h, w.pad_top, w.pad_bottom), (4, 1, 1));
        let w = Window::new(3, 8, 8, 2, 1, Padding::Same).expect("fits");
        assert_eq!((w.out_h, w.pad_top, w.pad_bottom), (8, 0, 1));
        // Floor rounding for pools: 7 / 2 -> 3.
        assert_eq!(Window::new(1, 7, 7, 2, 2, Padding::Valid).map(|w| w.out_h), Ok(3));
        assert_eq!(Window::new(1, 5, 5, 3, 1, Padding::Explicit(1)).map(|w| w.out_h), Ok(5));
    }

    #[test]
    fn a_window_larger_than_the_image_shows_its_arithmetic() {
        let (axis, a) = Window::new(16, 4, 4, 5, 1, Padding::Valid).expect_err("does not fit");
        assert_eq!(axis, 0);
        assert_eq!(a.arithmetic(), "(4 - 5 + 2*0) / 1 + 1 = 0");
        assert_eq!(a.signed_output(), 0);
        let (_, a) = Window::new(1, 2, 2, 7, 2, Padding::Valid).expect_err("does not fit");
        assert_eq!(a.arithmetic(), "(2 - 7 + 2*0) / 2 + 1 = -2");
        assert_eq!(Window::new(1, 4, 4, 5, 1, Padding::Same).map(|w| w.out_h), Ok(4));
    }

    #[test]
    fn taps_outside_the_image_are_padding() {
        let w = Window::new(1, 4, 4, 3, 1, Padding::Explicit(1)).expect("fits");
        assert_eq!(w.input_y(0, 0), None);
        assert_eq!(w.input_y(0, 1), Some(0));
        assert_eq!(w.input_x(3, 2), None);
        assert_eq!(Window::global(8, 7, 7).positions(), 1);
    }
}

//! Dropout masks: while training, a pure function of (seed, layer, step, element); at test
//! time a constant. The layer multiplies its input by the mask (an [`super::ArithOp::Mul`]).

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, ShapeCx, cast};
use crate::ir::{DropoutMode, Shape};
use crate::rng;
use ndarray::Array2;

/// The dropout ops.
#[derive(Debug, Clone, PartialEq)]
pub enum DropoutOp {
    /// The dropout multiplier for a tensor shaped like `like`: while training, `scale` for kept
    /// elements and 0 for dropped ones; at test time the constant `test_scale`.
    Mask {
        /// The tensor being masked (for its shape).
        like: NodeId,
        /// Drop probability.
        rate: f64,
        /// Inverted or scale-at-test.
        mode: DropoutMode,
        /// The model layer index, which selects the random stream.
        layer: usize,
    },
}

impl DropoutOp {
    /// The multiplier of a kept element while training.
    pub fn keep_scale(rate: f64, mode: DropoutMode) -> f64 {
        match mode {
            DropoutMode::Inverted => 1.0 / (1.0 - rate),
            DropoutMode::ScaleAtTest => 1.0,
        }
    }

    /// The multiplier of every element at test time.
    pub fn test_scale(rate: f64, mode: DropoutMode) -> f64 {
        match mode {
            DropoutMode::Inverted => 1.0,
            DropoutMode::ScaleAtTest => 1.0 - rate,
        }
    }
}

impl Family for DropoutOp {
    fn inputs(&self) -> Vec<NodeId> {
        let DropoutOp::Mask { like, .. } = *self;
        vec![like]
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        let DropoutOp::Mask {
            like,
            rate,
            mode,
            layer,
        } = *self;
        DropoutOp::Mask {
            like: f(like),
            rate,
            mode,
            layer,
        }
    }

    fn name(&self) -> &'static str {
        "dropout_mask"
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        let DropoutOp::Mask { like, .. } = *self;
        cx.of(like)
    }

    fn fusion(&self) -> Fusion {
        Fusion::Prologue
    }

    fn is_constant(&self) -> bool {
        true
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        let DropoutOp::Mask {
            like,
            rate,
            mode,
            layer,
        } = *self;
        let (rows, cols) = cx.value(like).dim();
        if cx.training {
            let keep: F = cast(DropoutOp::keep_scale(rate, mode));
            let (seed, step, rate32) = (cx.seed, cx.step, rate as f32);
            Array2::from_shape_fn((rows, cols), |(r, j)| {
                if rng::dropout_keep(seed, layer, step, (r * cols + j) as u64, rate32) {
                    keep
                } else {
                    F::zero()
                }
            })
        } else {
            Array2::from_elem((rows, cols), cast(DropoutOp::test_scale(rate, mode)))
        }
    }

    fn differentiate(&self, _node: NodeId, _dy: Option<NodeId>, _cx: &mut dyn GradCx) {
        // A mask depends on no parameter: nothing flows through it.
    }
}

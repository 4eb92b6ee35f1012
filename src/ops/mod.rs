//! The closed op set every backend executes, one file per family.
//!
//! Each family's file holds everything netc knows about its ops, side by side (micrograd's
//! habit): the nodes it reads ([`Family::inputs`]), its shape rule ([`Family::shape`]), its
//! reference evaluation ([`Family::eval`], what the interpreter runs), its derivative
//! ([`Family::differentiate`], what autodiff appends), and its fusion class ([`Family::fusion`],
//! what the fusion pass groups it by). Elementwise ops also state their scalar math once
//! ([`Family::scalar`]), generic over [`Scalar`]: the interpreter runs it on `f64`, the code
//! generator on Cranelift values, so the JIT, the object file and the reference cannot disagree
//! on a formula.
//!
//! Adding an elementwise op touches its family's file only; any other op also needs its kernel
//! (a row kernel in `back/jit/native.rs` or `back/kernels.rs`, chosen in `passes/fuse.rs`).

pub mod activation;
pub mod arith;
pub mod channels;
pub mod conv;
pub mod dropout;
pub mod linear;
pub mod loss;
pub mod maxout;
pub mod norm;
pub mod penalty;
pub mod pool;
pub mod softmax;
#[cfg(test)]
mod testing;
pub mod update;

use crate::ir::{Arena, Dim, Handle, Shape};
use ndarray::Array2;
use std::fmt::Debug;

pub use activation::{ActivationOp, Unary};
pub use arith::ArithOp;
pub use channels::ChannelOp;
pub use conv::ConvOp;
pub use dropout::DropoutOp;
pub use linear::LinearOp;
pub use loss::LossOp;
pub use maxout::MaxoutOp;
pub use norm::{NormOp, NormParam, RunningKind};
pub use penalty::PenaltyOp;
pub use pool::PoolOp;
pub use softmax::SoftmaxOp;
pub use update::UpdateOp;

/// A node of a graph.
pub type NodeId = Handle<Node>;

/// A node: its op, its shape, and the model layer it belongs to (for reports).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it computes.
    pub op: Op,
    /// Its output shape.
    pub shape: Shape,
    /// Index of the model layer it computes, if any.
    pub layer: Option<usize>,
}

/// The ops: three leaves and one variant per family.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The batch of input features.
    Input,
    /// The batch of targets (one-hot classes, or 0/1 for one sigmoid output).
    Targets,
    /// A trainable parameter (index into the graph's parameters).
    Param(usize),
    /// Matrix products, bias rows and their gradients.
    Linear(LinearOp),
    /// Elementwise activations and their gradients.
    Activation(ActivationOp),
    /// Elementwise sums and products.
    Arith(ArithOp),
    /// Row softmax and its gradient.
    Softmax(SoftmaxOp),
    /// Maxout and its gradient.
    Maxout(MaxoutOp),
    /// Dropout masks.
    Dropout(DropoutOp),
    /// Losses and their gradients.
    Loss(LossOp),
    /// The L1/L2 penalty and its gradient.
    Penalty(PenaltyOp),
    /// Convolutions and their gradients.
    Conv(ConvOp),
    /// Max and average pooling and their gradients.
    Pool(PoolOp),
    /// Batch normalization: statistics, the normalization and their gradients.
    Norm(NormOp),
    /// Per-channel rows, channel sums, concatenation and slicing of images.
    Channel(ChannelOp),
    /// One optimizer step, or a running average moved towards a value.
    Update(UpdateOp),
}

/// How the fusion pass treats an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// A leaf: input, targets or a parameter (no work).
    Leaf,
    /// Elementwise over its output's shape: joins the open map kernel; its math is
    /// [`Family::scalar`] of its inputs in [`Family::inputs`] order.
    Elementwise,
    /// A column sum (over the rows of `over`) of an elementwise term whose math is
    /// [`Family::scalar`]: joins the open map kernel as a reduction output.
    ColumnSum {
        /// The tensor whose rows are summed (the kernel's iteration space).
        over: NodeId,
    },
    /// A matrix product: one `gemm` step.
    MatMul,
    /// A kernel of its own that works row by row (softmax, maxout, losses).
    Row,
    /// A kernel of its own over whole samples, which each backend implements for the op
    /// (convolutions, pooling, batch normalization, channel ops): one [`crate::passes::fuse::Step::Node`].
    Kernel,
    /// Depends only on shape, seed and step (a dropout mask): computed before the piece's other
    /// kernels.
    Prologue,
    /// Folded into the update kernel of its parameter (the regularizer's gradient).
    IntoUpdate,
    /// Computed on demand for reports, outside the three pieces (the penalty's value).
    Report,
    /// The optimizer step of one parameter.
    Update,
}

/// Scalar arithmetic that elementwise ops are written in, once, for every backend.
pub trait Scalar {
    /// A value: `f64` in the reference, a Cranelift SSA value in generated code.
    type V: Copy;
    /// A constant.
    fn constant(&mut self, c: f64) -> Self::V;
    /// `a + b`.
    fn add(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    fn mul(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    fn div(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `|a|`.
    fn abs(&mut self, a: Self::V) -> Self::V;
    /// `e^a`.
    fn exp(&mut self, a: Self::V) -> Self::V;
    /// `e^a - 1` (accurate near 0 where the backend can afford it).
    fn exp_m1(&mut self, a: Self::V) -> Self::V;
    /// `1 / (1 + e^-a)`, without overflow for large `|a|`.
    fn sigmoid(&mut self, a: Self::V) -> Self::V;
    /// `tanh a`.
    fn tanh(&mut self, a: Self::V) -> Self::V;
    /// `x > 0 ? if_positive : otherwise`.
    fn select_positive(&mut self, x: Self::V, if_positive: Self::V, otherwise: Self::V) -> Self::V;
}

/// The reference [`Scalar`]: `f64` with the standard library's functions.
pub struct Reference;

impl Scalar for Reference {
    type V = f64;
    #[inline(always)]
    fn constant(&mut self, c: f64) -> f64 {
        c
    }
    #[inline(always)]
    fn add(&mut self, a: f64, b: f64) -> f64 {
        a + b
    }
    #[inline(always)]
    fn mul(&mut self, a: f64, b: f64) -> f64 {
        a * b
    }
    #[inline(always)]
    fn div(&mut self, a: f64, b: f64) -> f64 {
        a / b
    }
    #[inline(always)]
    fn abs(&mut self, a: f64) -> f64 {
        a.abs()
    }
    #[inline(always)]
    fn exp(&mut self, a: f64) -> f64 {
        a.exp()
    }
    #[inline(always)]
    fn exp_m1(&mut self, a: f64) -> f64 {
        a.exp_m1()
    }
    #[inline(always)]
    fn sigmoid(&mut self, a: f64) -> f64 {
        activation::sigmoid(a)
    }
    #[inline(always)]
    fn tanh(&mut self, a: f64) -> f64 {
        a.tanh()
    }
    #[inline(always)]
    fn select_positive(&mut self, x: f64, if_positive: f64, otherwise: f64) -> f64 {
        if x > 0.0 { if_positive } else { otherwise }
    }
}

/// The float types the reference evaluation runs in.
pub trait Float:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + num_traits::FromPrimitive
    + Debug
    + Send
    + Sync
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + 'static
{
}
impl Float for f32 {}
impl Float for f64 {}

/// An `f64` as `F`.
pub fn cast<F: Float>(x: f64) -> F {
    F::from_f64(x).expect("every f64 converts to f32 or f64")
}

/// An `F` as `f64`.
pub fn wide<F: Float>(x: F) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

/// What the reference evaluation of one node reads: earlier values, parameters, and the mode.
pub struct EvalCx<'a, F: Float> {
    /// The graph's nodes.
    pub nodes: &'a Arena<Node>,
    /// Values computed so far, by node index.
    pub values: &'a [Option<Array2<F>>],
    /// Parameter values.
    pub params: &'a [Array2<F>],
    /// The node being evaluated.
    pub node: NodeId,
    /// Training (dropout masks drawn) or evaluation (dropout scales applied).
    pub training: bool,
    /// The global step, which selects the dropout masks.
    pub step: u64,
    /// The seed of dropout masks.
    pub seed: u64,
}

impl<F: Float> EvalCx<'_, F> {
    /// The value of a node that has run (or of a parameter).
    pub fn value(&self, n: NodeId) -> &Array2<F> {
        if let Op::Param(p) = self.nodes[n].op {
            return &self.params[p];
        }
        self.values[n.index()]
            .as_ref()
            .expect("nodes are read only after they ran")
    }

    /// The shape of the node being evaluated.
    pub fn shape(&self) -> Shape {
        self.nodes[self.node].shape
    }
}

/// What a shape rule reads: the shapes of earlier nodes and of parameters.
pub trait ShapeCx {
    /// The shape of an earlier node.
    fn of(&self, n: NodeId) -> Shape;
}

/// What a derivative rule writes to: autodiff's graph under construction.
pub trait GradCx {
    /// True when the node's value depends on a parameter (only those need gradients).
    fn needs(&self, n: NodeId) -> bool;
    /// Appends a node to the backward piece.
    fn add(&mut self, op: Op) -> NodeId;
    /// Adds `g` to the gradient of `n` (summing when `n` has several consumers).
    fn accumulate(&mut self, n: NodeId, g: NodeId);
}

/// One family of ops: its inputs, shape rule, reference evaluation, derivative and fusion class.
pub trait Family {
    /// The nodes the op reads, in the order [`Family::scalar`] takes them.
    fn inputs(&self) -> Vec<NodeId>;
    /// The same op reading `f(n)` for each node `n` it reads (passes that rebuild a graph use
    /// it); everything else about the op is kept.
    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self;
    /// The op's name in reports and plan snapshots.
    fn name(&self) -> &'static str;
    /// The output shape from the input shapes.
    fn shape(&self, cx: &dyn ShapeCx) -> Shape;
    /// How the fusion pass treats the op.
    fn fusion(&self) -> Fusion;
    /// The value, computed the obvious way (the oracle every backend is tested against).
    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F>;
    /// Appends the gradients of the op's inputs, given the gradient `dy` of its output (`None`
    /// for the loss, the root of differentiation). `node` is the op's own node.
    fn differentiate(&self, node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx);
    /// True when the value depends only on its inputs' shapes, not their values (no gradient
    /// flows through it).
    fn is_constant(&self) -> bool {
        false
    }
    /// The elementwise math of an [`Fusion::Elementwise`] or [`Fusion::ColumnSum`] op, on the
    /// values of its inputs. Never called for other ops.
    fn scalar<S: Scalar>(&self, s: &mut S, args: &[S::V]) -> S::V {
        let _ = (s, args);
        unreachable!("{} is not elementwise", self.name())
    }
}

/// Dispatches a method to the family of an op; leaves take the `leaf` expression.
macro_rules! dispatch {
    ($op:expr, $f:ident => $body:expr, leaf => $leaf:expr) => {
        match $op {
            Op::Input | Op::Targets | Op::Param(_) => $leaf,
            Op::Linear($f) => $body,
            Op::Activation($f) => $body,
            Op::Arith($f) => $body,
            Op::Softmax($f) => $body,
            Op::Maxout($f) => $body,
            Op::Dropout($f) => $body,
            Op::Loss($f) => $body,
            Op::Penalty($f) => $body,
            Op::Conv($f) => $body,
            Op::Pool($f) => $body,
            Op::Norm($f) => $body,
            Op::Channel($f) => $body,
            Op::Update($f) => $body,
        }
    };
}

impl Op {
    /// The nodes this op reads.
    pub fn inputs(&self) -> Vec<NodeId> {
        dispatch!(self, f => f.inputs(), leaf => vec![])
    }

    /// The same op reading `f(n)` for each node `n` it reads (see [`Family::map_inputs`]).
    pub fn map_inputs(&self, mut f: impl FnMut(NodeId) -> NodeId) -> Op {
        match self {
            Op::Input => Op::Input,
            Op::Targets => Op::Targets,
            Op::Param(p) => Op::Param(*p),
            Op::Linear(o) => Op::Linear(o.map_inputs(&mut f)),
            Op::Activation(o) => Op::Activation(o.map_inputs(&mut f)),
            Op::Arith(o) => Op::Arith(o.map_inputs(&mut f)),
            Op::Softmax(o) => Op::Softmax(o.map_inputs(&mut f)),
            Op::Maxout(o) => Op::Maxout(o.map_inputs(&mut f)),
            Op::Dropout(o) => Op::Dropout(o.map_inputs(&mut f)),
            Op::Loss(o) => Op::Loss(o.map_inputs(&mut f)),
            Op::Penalty(o) => Op::Penalty(o.map_inputs(&mut f)),
            Op::Conv(o) => Op::Conv(o.map_inputs(&mut f)),
            Op::Pool(o) => Op::Pool(o.map_inputs(&mut f)),
            Op::Norm(o) => Op::Norm(o.map_inputs(&mut f)),
            Op::Channel(o) => Op::Channel(o.map_inputs(&mut f)),
            Op::Update(o) => Op::Update(o.map_inputs(&mut f)),
        }
    }

    /// The op's name in reports and plan snapshots.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Targets => "targets",
            Op::Param(_) => "param",
            other => dispatch!(other, f => f.name(), leaf => unreachable!("leaves are named above")),
        }
    }

    /// The output shape of a non-leaf op (leaf shapes come from the model and parameters).
    pub fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        dispatch!(self, f => f.shape(cx), leaf => unreachable!("leaf shapes are set by the graph builder"))
    }

    /// How the fusion pass treats the op.
    pub fn fusion(&self) -> Fusion {
        dispatch!(self, f => f.fusion(), leaf => Fusion::Leaf)
    }

    /// The reference value of a non-leaf op other than an update (updates run in place:
    /// [`UpdateOp::apply`]).
    pub fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        dispatch!(self, f => f.eval(cx), leaf => unreachable!("leaves hold values, they are not evaluated"))
    }

    /// Appends the gradients of the op's inputs (see [`Family::differentiate`]).
    pub fn differentiate(&self, node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        dispatch!(self, f => f.differentiate(node, dy, cx), leaf => {})
    }

    /// True when no gradient flows through the op (see [`Family::is_constant`]).
    pub fn is_constant(&self) -> bool {
        dispatch!(self, f => f.is_constant(), leaf => false)
    }

    /// The elementwise math of an elementwise or column-sum op (see [`Family::scalar`]).
    pub fn scalar<S: Scalar>(&self, s: &mut S, args: &[S::V]) -> S::V {
        dispatch!(self, f => f.scalar(s, args), leaf => unreachable!("leaves have no math"))
    }
}

/// The reference evaluation of an elementwise op reading `inputs`: `f` (the op's
/// [`Family::scalar`] on [`Reference`]) at every element of the output, in `f64`, reading
/// `[1, cols]` inputs as rows broadcast over the output's rows.
pub fn eval_elementwise<F: Float, const N: usize>(
    cx: &EvalCx<F>,
    inputs: [NodeId; N],
    f: impl Fn(&[f64]) -> f64,
) -> Array2<F> {
    let values = inputs.map(|n| cx.value(n));
    let rows = values.iter().map(|a| a.nrows()).max().unwrap_or(1);
    let cols = cx.shape().cols();
    debug_assert!(
        values
            .iter()
            .all(|a| a.ncols() == cols && (a.nrows() == rows || a.nrows() == 1))
    );
    let standard = values.map(|a| a.as_standard_layout());
    let slices: [&[F]; N] =
        std::array::from_fn(|k| standard[k].as_slice().expect("a standard-layout array is one slice"));
    let broadcast = values.map(|a| a.nrows() == 1 && rows != 1);
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row: [&[F]; N] = std::array::from_fn(|k| {
            if broadcast[k] {
                &slices[k][..cols]
            } else {
                &slices[k][r * cols..(r + 1) * cols]
            }
        });
        // One index into N slices: a plain loop keeps the bounds checks out of the body.
        #[allow(clippy::needless_range_loop)]
        for c in 0..cols {
            let args: [f64; N] = std::array::from_fn(|k| wide(row[k][c]));
            out.push(cast(f(&args)));
        }
    }
    Array2::from_shape_vec((rows, cols), out).expect("rows x cols values")
}

/// The reference evaluation of a column-sum op: the sum over rows of [`Family::scalar`] of its
/// inputs, as a `[1, cols]` row.
pub fn eval_column_sum<F: Float>(op: &Op, cx: &EvalCx<F>) -> Array2<F> {
    let inputs: Vec<&Array2<F>> = op.inputs().into_iter().map(|n| cx.value(n)).collect();
    let (rows, cols) = inputs[0].dim();
    let mut out = Array2::zeros((1, cols));
    let mut args = vec![0.0; inputs.len()];
    for r in 0..rows {
        for c in 0..cols {
            for (arg, input) in args.iter_mut().zip(&inputs) {
                *arg = wide(input[[r, c]]);
            }
            out[[0, c]] += cast::<F>(op.scalar(&mut Reference, &args));
        }
    }
    out
}

/// `[rows of x, n]`: a shape with the rows of `x` and `n` columns.
pub fn with_cols(x: Shape, n: usize) -> Shape {
    Shape::new(&[x.rows(), Dim::Fixed(n)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar math of every elementwise activation agrees with its closed forms.
    #[test]
    fn reference_scalar_math() {
        let mut s = Reference;
        for &x in &[-3.0, -0.5, 0.0, 0.5, 3.0] {
            assert_eq!(Unary::Relu.apply(&mut s, x), x.max(0.0));
            let y = Unary::Sigmoid.apply(&mut s, x);
            assert!((y - 1.0 / (1.0 + (-x).exp())).abs() < 1e-15);
            let d = Unary::Sigmoid.derivative(&mut s, x, y);
            assert!((d - y * (1.0 - y)).abs() < 1e-12);
            let t = Unary::Tanh.apply(&mut s, x);
            assert!((Unary::Tanh.derivative(&mut s, x, t) - (1.0 - t * t)).abs() < 1e-12);
        }
    }
}

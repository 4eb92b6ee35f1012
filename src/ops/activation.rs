//! Elementwise activations: sigmoid, tanh, relu, leaky relu, elu (one [`Unary`] each) and prelu
//! (a learned slope per column), with their gradients.

use super::{
    EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, Reference, Scalar, ShapeCx, eval_column_sum, eval_elementwise,
};
use crate::ir::Shape;
use ndarray::Array2;

/// Elementwise activations with a closed-form derivative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `max(0, x)`.
    Relu,
    /// `x` or `alpha x`.
    LeakyRelu(f64),
    /// `x` or `alpha (e^x - 1)`.
    Elu(f64),
}

impl Unary {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Unary::Sigmoid => "sigmoid",
            Unary::Tanh => "tanh",
            Unary::Relu => "relu",
            Unary::LeakyRelu(_) => "leaky_relu",
            Unary::Elu(_) => "elu",
        }
    }

    /// `f(x)`.
    #[inline(always)]
    pub fn apply<S: Scalar>(self, s: &mut S, x: S::V) -> S::V {
        match self {
            Unary::Sigmoid => s.sigmoid(x),
            Unary::Tanh => s.tanh(x),
            Unary::Relu => {
                let zero = s.constant(0.0);
                s.select_positive(x, x, zero)
            }
            Unary::LeakyRelu(alpha) => {
                let a = s.constant(alpha);
                let ax = s.mul(x, a);
                s.select_positive(x, x, ax)
            }
            Unary::Elu(alpha) => {
                let em1 = s.exp_m1(x);
                let a = s.constant(alpha);
                let negative = s.mul(em1, a);
                s.select_positive(x, x, negative)
            }
        }
    }

    /// `f'(x)`, given `x` and `y = f(x)` (whichever is cheaper is used).
    ///
    /// Sigmoid and tanh use forms in `x` that stay accurate when the unit saturates
    /// (`y (1 - y)` and `1 - y^2` cancel to noise there, and that noise is what a vanishing
    /// gradient would be made of): `e / (1 + e)^2` with `e = exp(-|x|)`, and
    /// `4 e / (1 + e)^2` with `e = exp(-2|x|)`.
    #[inline(always)]
    pub fn derivative<S: Scalar>(self, s: &mut S, x: S::V, y: S::V) -> S::V {
        match self {
            Unary::Sigmoid | Unary::Tanh => {
                let ax = s.abs(x);
                let k = s.constant(if self == Unary::Tanh { -2.0 } else { -1.0 });
                let t = s.mul(ax, k);
                let e = s.exp(t);
                let one = s.constant(1.0);
                let one_plus_e = s.add(one, e);
                let square = s.mul(one_plus_e, one_plus_e);
                let e = if self == Unary::Tanh {
                    let four = s.constant(4.0);
                    s.mul(four, e)
                } else {
                    e
                };
                s.div(e, square)
            }
            Unary::Relu => {
                let (one, zero) = (s.constant(1.0), s.constant(0.0));
                s.select_positive(x, one, zero)
            }
            Unary::LeakyRelu(alpha) => {
                let (one, a) = (s.constant(1.0), s.constant(alpha));
                s.select_positive(x, one, a)
            }
            Unary::Elu(alpha) => {
                let (one, a) = (s.constant(1.0), s.constant(alpha));
                let y_plus_a = s.add(y, a);
                s.select_positive(x, one, y_plus_a)
            }
        }
    }
}

/// A numerically safe logistic function.
#[inline]
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The activation ops.
#[derive(Debug, Clone, PartialEq)]
pub enum ActivationOp {
    /// `f(x)`.
    Unary {
        /// Which activation.
        func: Unary,
        /// Its input.
        x: NodeId,
    },
    /// `dy * f'(x)`.
    UnaryGrad {
        /// Which activation.
        func: Unary,
        /// Its input.
        x: NodeId,
        /// Its output.
        y: NodeId,
        /// Upstream gradient.
        dy: NodeId,
    },
    /// `x` where positive, else `slope_j x` with one learned slope per column.
    Prelu {
        /// Input.
        x: NodeId,
        /// `[1, n]` slopes.
        slope: NodeId,
    },
    /// PReLU backward to the input: `dy` where `x > 0`, else `dy slope_j`.
    PreluGradInput {
        /// Input.
        x: NodeId,
        /// Slopes.
        slope: NodeId,
        /// Upstream gradient.
        dy: NodeId,
    },
    /// PReLU backward to the slopes: column sums of `dy * x` where `x <= 0`.
    PreluGradSlope {
        /// Input.
        x: NodeId,
        /// Upstream gradient.
        dy: NodeId,
    },
}

/// `f(x)` as an op.
pub fn unary(func: Unary, x: NodeId) -> Op {
    Op::Activation(ActivationOp::Unary { func, x })
}

impl Family for ActivationOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            ActivationOp::Unary { x, .. } => vec![x],
            ActivationOp::UnaryGrad { x, y, dy, .. } => vec![x, y, dy],
            ActivationOp::Prelu { x, slope } => vec![x, slope],
            ActivationOp::PreluGradInput { x, slope, dy } => vec![x, slope, dy],
            ActivationOp::PreluGradSlope { x, dy } => vec![x, dy],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            ActivationOp::Unary { func, x } => ActivationOp::Unary { func, x: f(x) },
            ActivationOp::UnaryGrad { func, x, y, dy } => ActivationOp::UnaryGrad {
                func,
                x: f(x),
                y: f(y),
                dy: f(dy),
            },
            ActivationOp::Prelu { x, slope } => ActivationOp::Prelu {
                x: f(x),
                slope: f(slope),
            },
            ActivationOp::PreluGradInput { x, slope, dy } => ActivationOp::PreluGradInput {
                x: f(x),
                slope: f(slope),
                dy: f(dy),
            },
            ActivationOp::PreluGradSlope { x, dy } => ActivationOp::PreluGradSlope { x: f(x), dy: f(dy) },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ActivationOp::Unary { func, .. } => func.name(),
            ActivationOp::UnaryGrad { func, .. } => match func {
                Unary::Sigmoid => "sigmoid_grad",
                Unary::Tanh => "tanh_grad",
                Unary::Relu => "relu_grad",
                Unary::LeakyRelu(_) => "leaky_relu_grad",
                Unary::Elu(_) => "elu_grad",
            },
            ActivationOp::Prelu { .. } => "prelu",
            ActivationOp::PreluGradInput { .. } => "prelu_grad_input",
            ActivationOp::PreluGradSlope { .. } => "prelu_grad_slope",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            ActivationOp::Unary { x, .. }
            | ActivationOp::UnaryGrad { x, .. }
            | ActivationOp::Prelu { x, .. }
            | ActivationOp::PreluGradInput { x, .. } => cx.of(x),
            ActivationOp::PreluGradSlope { x, .. } => Shape::fixed(1, cx.of(x).cols()),
        }
    }

    fn fusion(&self) -> Fusion {
        match *self {
            ActivationOp::PreluGradSlope { x, .. } => Fusion::ColumnSum { over: x },
            _ => Fusion::Elementwise,
        }
    }

    #[inline(always)]
    fn scalar<S: Scalar>(&self, s: &mut S, args: &[S::V]) -> S::V {
        match *self {
            ActivationOp::Unary { func, .. } => func.apply(s, args[0]),
            ActivationOp::UnaryGrad { func, .. } => {
                let d = func.derivative(s, args[0], args[1]);
                s.mul(args[2], d)
            }
            ActivationOp::Prelu { .. } => {
                let (x, slope) = (args[0], args[1]);
                let scaled = s.mul(x, slope);
                s.select_positive(x, x, scaled)
            }
            ActivationOp::PreluGradInput { .. } => {
                let (x, slope, dy) = (args[0], args[1], args[2]);
                let scaled = s.mul(dy, slope);
                s.select_positive(x, dy, scaled)
            }
            ActivationOp::PreluGradSlope { .. } => {
                let (x, dy) = (args[0], args[1]);
                let term = s.mul(dy, x);
                let zero = s.constant(0.0);
                s.select_positive(x, zero, term)
            }
        }
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        let math = |args: &[f64]| self.scalar(&mut Reference, args);
        match *self {
            ActivationOp::Unary { x, .. } => eval_elementwise(cx, [x], math),
            ActivationOp::UnaryGrad { x, y, dy, .. } => eval_elementwise(cx, [x, y, dy], math),
            ActivationOp::Prelu { x, slope } => eval_elementwise(cx, [x, slope], math),
            ActivationOp::PreluGradInput { x, slope, dy } => eval_elementwise(cx, [x, slope, dy], math),
            ActivationOp::PreluGradSlope { .. } => eval_column_sum(&Op::Activation(self.clone()), cx),
        }
    }

    fn differentiate(&self, node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        let dy = dy.expect("activations are never the loss");
        match *self {
            ActivationOp::Unary { func, x } => {
                let dx = cx.add(Op::Activation(ActivationOp::UnaryGrad { func, x, y: node, dy }));
                cx.accumulate(x, dx);
            }
            ActivationOp::Prelu { x, slope } => {
                if cx.needs(x) {
                    let dx = cx.add(Op::Activation(ActivationOp::PreluGradInput { x, slope, dy }));
                    cx.accumulate(x, dx);
                }
                let ds = cx.add(Op::Activation(ActivationOp::PreluGradSlope { x, dy }));
                cx.accumulate(slope, ds);
            }
            ref backward => unreachable!("{backward:?} is a backward op"),
        }
    }
}

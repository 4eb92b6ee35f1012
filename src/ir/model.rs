//! The model: layers, activations, initializers, dropout, losses, regularization.

use super::{Arena, Dim, Handle, Padding, Shape, Window};

/// The network: an input shape, layers that each name what they read, an output layer, and
/// a loss on the output.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Model {
    /// The name after `model`.
    pub name: String,
    /// One sample's shape: `[features]`, or `[channels, height, width]` for images.
    pub input: Vec<usize>,
    /// Layers, each after the layers it reads (a topological order).
    pub layers: Arena<Layer>,
    /// The layer whose output is the model's prediction (the last layer written); `None`
    /// only in a model without layers, which the checker refuses.
    pub output: Option<Handle<Layer>>,
    /// The loss applied to the output.
    pub loss: Loss,
}

impl Model {
    /// The shape of one batch of inputs.
    pub fn input_shape(&self) -> Shape {
        Shape::per_sample(&self.input)
    }

    /// Values per input sample (the product of the input's dimensions).
    pub fn input_width(&self) -> usize {
        self.input.iter().product()
    }
}

/// What a layer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Source {
    /// The model's input.
    Input,
    /// An earlier layer's output.
    Layer(Handle<Layer>),
}

/// One layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Layer {
    /// Its name: the label (`h1:`), or `<kind><n>` for unlabelled layers (`dense2`).
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// Per-layer regularization; each strength not given falls back to the global one.
    pub regularization: LayerRegularization,
    /// What it reads: the layer written before it, and for `add`, `concat` and residual joins
    /// the other layers they name (a residual join reads its body's output, then its input).
    pub inputs: Vec<Source>,
}

/// What a parameter is, for naming, layout and regularization (never on biases, slopes or
/// batch normalization's scale and shift).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ParamKind {
    /// A dense weight matrix `[inputs, outputs]` (`[outputs, inputs]` in weight files).
    Weight,
    /// Convolution filters `[filters, channels * kh * kw]` (`[filters, channels, kh, kw]` in
    /// weight files, PyTorch's layout).
    Filter,
    /// A bias row.
    Bias,
    /// PReLU slopes (one per unit, or per channel of an image).
    Slope,
    /// Batch normalization's learned scale (PyTorch's `weight`).
    Scale,
    /// Batch normalization's learned shift (PyTorch's `bias`).
    Shift,
    /// Batch normalization's running mean: not trained, averaged from batch statistics.
    RunningMean,
    /// Batch normalization's running (unbiased) variance.
    RunningVar,
}

impl ParamKind {
    /// The suffix of the parameter's name (`h1.weight`), as PyTorch names it.
    pub fn suffix(self) -> &'static str {
        match self {
            ParamKind::Weight | ParamKind::Filter | ParamKind::Scale => "weight",
            ParamKind::Bias | ParamKind::Shift => "bias",
            ParamKind::Slope => "slope",
            ParamKind::RunningMean => "running_mean",
            ParamKind::RunningVar => "running_var",
        }
    }

    /// Weights and filters: the only tensors L1 and L2 apply to.
    pub fn is_regularized(self) -> bool {
        matches!(self, ParamKind::Weight | ParamKind::Filter)
    }

    /// False for running statistics, which follow the batches instead of a gradient.
    pub fn is_trainable(self) -> bool {
        !matches!(self, ParamKind::RunningMean | ParamKind::RunningVar)
    }
}

/// The layout of one parameter tensor of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ParamShape {
    /// What it is.
    pub kind: ParamKind,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// The window of a filter (`(1, 1)` for everything else).
    pub kernel: (usize, usize),
    /// The part of the layer it belongs to, named between the layer and the suffix
    /// (`res1.project.weight`); empty for the layer's own parameters.
    pub part: &'static str,
}

impl ParamShape {
    fn new(kind: ParamKind, rows: usize, cols: usize) -> ParamShape {
        ParamShape {
            kind,
            rows,
            cols,
            kernel: (1, 1),
            part: "",
        }
    }

    fn row(kind: ParamKind, cols: usize) -> ParamShape {
        ParamShape::new(kind, 1, cols)
    }

    /// Its shape in weight files (PyTorch's layouts).
    pub fn file_shape(&self) -> Vec<usize> {
        match self.kind {
            ParamKind::Weight => vec![self.cols, self.rows],
            ParamKind::Filter => {
                let (kh, kw) = self.kernel;
                vec![self.rows, self.cols / (kh * kw).max(1), kh, kw]
            }
            _ => vec![self.rows * self.cols],
        }
    }

    /// Its full name for a layer (`c1.weight`, `res1.project.weight`).
    pub fn name(&self, layer: &str) -> String {
        if self.part.is_empty() {
            format!("{layer}.{}", self.kind.suffix())
        } else {
            format!("{layer}.{}.{}", self.part, self.kind.suffix())
        }
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True for a tensor without elements (never built by netc).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The two pooling ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PoolKind {
    /// The largest value of each window.
    Max,
    /// The mean of each window's values inside the image (padding is not counted).
    Avg,
}

/// What a residual block adds to its body's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Shortcut {
    /// The block's input itself (shapes must agree).
    Identity,
    /// A learned projection of the input: a 1x1 convolution with the stride that maps the
    /// input's size to the output's, then batch normalization (a matrix product for flat
    /// inputs).
    Project,
}

/// The kinds of layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum LayerKind {
    /// `y = act(x W + b)`; an image input is read flattened (row-major, channels first).
    Dense {
        /// Output width.
        width: usize,
        /// Activation applied to the affine output.
        activation: Activation,
        /// How `W` is initialized.
        init: Init,
        /// Initial value of every bias.
        bias: f64,
    },
    /// `y_j = max_k (x W + b)_{j*pieces + k}`: a learned piecewise-linear activation.
    Maxout {
        /// Number of linear units; the output width is `units / pieces`.
        units: usize,
        /// Linear units per output.
        pieces: usize,
        /// How `W` is initialized.
        init: Init,
        /// Initial value of every bias.
        bias: f64,
        /// The last piece of every group is the constant 0 (no weights): with two pieces this is
        /// exactly relu.
        fixed_zero: bool,
    },
    /// Drops each unit with probability `rate` while training.
    Dropout {
        /// Probability of dropping a unit.
        rate: f64,
        /// Where the 1/(1-p) correction happens.
        mode: DropoutMode,
    },
    /// A 2-D convolution over `[channels, height, width]`: `filters` output channels.
    Conv {
        /// Output channels.
        filters: usize,
        /// Window side.
        kernel: usize,
        /// Step between windows.
        stride: usize,
        /// Padding.
        padding: Padding,
        /// Initial value of every bias, or `None` for no bias.
        bias: Option<f64>,
        /// Activation applied to the output.
        activation: Activation,
        /// How the filters are initialized.
        init: Init,
    },
    /// Max or average pooling over square windows.
    Pool {
        /// Max or average.
        op: PoolKind,
        /// Window side.
        window: usize,
        /// Step between windows (the window by default).
        stride: usize,
        /// Padding.
        padding: Padding,
    },
    /// The mean of each channel: `[C, H, W]` to `[C]`.
    GlobalPool,
    /// Batch normalization: per channel (or feature), batch statistics while training and
    /// running statistics otherwise, then a learned scale and shift.
    BatchNorm {
        /// Weight of the current batch in the running statistics (PyTorch's convention).
        momentum: f64,
        /// Added to the variance.
        eps: f64,
        /// Activation applied after the shift.
        activation: Activation,
    },
    /// `[C, H, W]` to `[C*H*W]` (row-major, as `torch.flatten(x, 1)`).
    Flatten,
    /// An activation on its own.
    Activation {
        /// The function.
        activation: Activation,
    },
    /// The elementwise sum of the layer before and the named layers (equal shapes).
    Add {
        /// Activation applied to the sum.
        activation: Activation,
    },
    /// The end of a residual block: its body's output plus its shortcut.
    Residual {
        /// Identity or projection.
        shortcut: Shortcut,
        /// Activation applied to the sum.
        activation: Activation,
    },
    /// The layer before and the named layers joined along channels (or features).
    Concat,
}

/// Why a layer's output shape does not exist.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeError {
    /// A convolution or pooling reads a flat tensor.
    NeedsImage {
        /// What it reads.
        input: Shape,
    },
    /// The window does not fit once along an axis (0 = height, 1 = width).
    Empty {
        /// The axis.
        axis: usize,
        /// Its arithmetic.
        arithmetic: super::window::Axis,
    },
    /// Shapes that must be equal differ (the inputs of an add or an identity shortcut).
    Mismatch {
        /// Every input's shape, in input order.
        shapes: Vec<Shape>,
    },
    /// No 1x1 projection with a whole stride maps the shortcut's shape to the body's.
    NoProjection {
        /// The block's input.
        from: Shape,
        /// The body's output.
        to: Shape,
    },
    /// Parts of a concatenation differ in rank or in height and width.
    Concat {
        /// Every part's shape, in input order.
        shapes: Vec<Shape>,
    },
    /// The output would hold more than [`MAX_SAMPLE_VALUES`] values per sample.
    TooLarge {
        /// Its dimensions after the batch.
        dims: Vec<usize>,
    },
}

/// The most values one sample of any tensor may hold (2^40): far beyond any machine's memory,
/// and small enough that no size computed from shapes overflows.
pub const MAX_SAMPLE_VALUES: usize = 1 << 40;

/// The number of values of a sample of these dimensions, if at most [`MAX_SAMPLE_VALUES`].
pub fn sample_values(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_SAMPLE_VALUES)
}

/// `(channels, height, width)` of an image shape.
pub fn image(shape: Shape) -> Option<(usize, usize, usize)> {
    match shape.sample()[..] {
        [c, h, w] => Some((c, h, w)),
        _ => None,
    }
}

/// A sample's shape as people write it: `16x14x14`, `64`.
pub fn describe_sample(shape: Shape) -> String {
    shape
        .sample()
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// The stride of a 1x1 projection from `from`'s height and width to `to`'s, if one exists.
pub fn projection_stride(from: (usize, usize), to: (usize, usize)) -> Option<usize> {
    (1..=from.0.max(from.1).max(1)).find(|&s| (from.0 - 1) / s + 1 == to.0 && (from.1 - 1) / s + 1 == to.1)
}

impl Layer {
    /// The geometry of a convolution, pooling or global pooling reading `input`.
    // A shape error is made at most once per layer of a spec that fails to check: its size
    // costs nothing worth a box.
    #[allow(clippy::result_large_err)]
    pub fn window(&self, input: Shape) -> Result<Window, ShapeError> {
        let (c, h, w) = image(input).ok_or(ShapeError::NeedsImage { input })?;
        let (k, s, padding) = match self.kind {
            LayerKind::Conv {
                kernel,
                stride,
                padding,
                ..
            } => (kernel, stride, padding),
            LayerKind::Pool {
                window,
                stride,
                padding,
                ..
            } => (window, stride, padding),
            _ => return Ok(Window::global(c, h, w)),
        };
        Window::new(c, h, w, k, s, padding).map_err(|(axis, arithmetic)| ShapeError::Empty { axis, arithmetic })
    }

    /// The layer's output shape given its inputs' shapes (in [`Layer::inputs`] order). The
    /// checker calls this once per layer and keeps the result (`check::Checked`); nothing
    /// else re-derives shapes.
    #[allow(clippy::result_large_err)]
    pub fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, ShapeError> {
        let shape = self.unchecked_output_shape(inputs)?;
        match sample_values(&shape.sample()) {
            Some(_) => Ok(shape),
            None => Err(ShapeError::TooLarge { dims: shape.sample() }),
        }
    }

    // As `output_shape`: a shape error is made at most once per failing layer.
    #[allow(clippy::result_large_err)]
    fn unchecked_output_shape(&self, inputs: &[Shape]) -> Result<Shape, ShapeError> {
        let input = inputs[0];
        let flat = |n: usize| Shape::new(&[input.rows(), Dim::Fixed(n)]);
        let image_of =
            |c: usize, h: usize, w: usize| Shape::new(&[input.rows(), Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)]);
        Ok(match self.kind {
            LayerKind::Dense { width, .. } => flat(width),
            LayerKind::Maxout { units, pieces, .. } => flat(units / pieces.max(1)),
            LayerKind::Dropout { .. } | LayerKind::BatchNorm { .. } | LayerKind::Activation { .. } => input,
            LayerKind::Conv { filters, .. } => {
                let g = self.window(input)?;
                image_of(filters, g.out_h, g.out_w)
            }
            LayerKind::Pool { .. } => {
                let g = self.window(input)?;
                image_of(g.channels, g.out_h, g.out_w)
            }
            LayerKind::GlobalPool => {
                let g = self.window(input)?;
                flat(g.channels)
            }
            LayerKind::Flatten => flat(input.cols()),
            LayerKind::Add { .. }
            | LayerKind::Residual {
                shortcut: Shortcut::Identity,
                ..
            } => {
                if inputs.iter().any(|s| s.sample() != input.sample()) {
                    return Err(ShapeError::Mismatch {
                        shapes: inputs.to_vec(),
                    });
                }
                input
            }
            LayerKind::Residual {
                shortcut: Shortcut::Project,
                ..
            } => {
                let (body, shortcut) = (inputs[0], inputs[1]);
                match (image(body), image(shortcut)) {
                    (Some((_, oh, ow)), Some((_, h, w))) if projection_stride((h, w), (oh, ow)).is_some() => body,
                    (None, None) => body,
                    _ => {
                        return Err(ShapeError::NoProjection {
                            from: shortcut,
                            to: body,
                        });
                    }
                }
            }
            LayerKind::Concat => {
                let spatial = |s: Shape| image(s).map(|(_, h, w)| (h, w));
                let first = spatial(input);
                if inputs.iter().any(|&s| spatial(s) != first) {
                    return Err(ShapeError::Concat {
                        shapes: inputs.to_vec(),
                    });
                }
                match image(input) {
                    Some((_, h, w)) => {
                        let channels = inputs.iter().map(|&s| image(s).map_or(0, |(c, _, _)| c)).sum();
                        image_of(channels, h, w)
                    }
                    None => flat(inputs.iter().map(|s| s.cols()).sum()),
                }
            }
        })
    }

    /// The layer's parameter tensors given its inputs' shapes (after
    /// [`Layer::output_shape`] accepted them), in the order the graph creates them and
    /// weight files name them.
    pub fn parameters(&self, inputs: &[Shape]) -> Vec<ParamShape> {
        let input = inputs[0];
        let inputs_cols = input.cols();
        let affine = |units: usize| {
            vec![
                ParamShape::new(ParamKind::Weight, inputs_cols, units),
                ParamShape::row(ParamKind::Bias, units),
            ]
        };
        // One prelu slope per channel of an image, per unit of a flat tensor.
        let slopes = |activation: Activation, output: Shape| match activation {
            Activation::Prelu { .. } => vec![ParamShape::row(
                ParamKind::Slope,
                image(output).map_or(output.cols(), |(c, _, _)| c),
            )],
            _ => Vec::new(),
        };
        let norm = |channels: usize, part: &'static str| {
            [
                ParamKind::Scale,
                ParamKind::Shift,
                ParamKind::RunningMean,
                ParamKind::RunningVar,
            ]
            .map(|kind| ParamShape {
                part,
                ..ParamShape::row(kind, channels)
            })
            .to_vec()
        };
        match self.kind {
            LayerKind::Dense { width, activation, .. } => {
                let mut params = affine(width);
                params.extend(slopes(activation, Shape::batch(width)));
                params
            }
            LayerKind::Maxout { .. } => affine(self.learned_units()),
            LayerKind::Conv {
                filters,
                kernel,
                bias,
                activation,
                ..
            } => {
                let channels = image(input).map_or(1, |(c, _, _)| c);
                let mut params = vec![ParamShape {
                    kernel: (kernel, kernel),
                    ..ParamShape::new(ParamKind::Filter, filters, channels * kernel * kernel)
                }];
                if bias.is_some() {
                    params.push(ParamShape::row(ParamKind::Bias, filters));
                }
                params.extend(slopes(activation, Shape::per_sample(&[filters, 1, 1])));
                params
            }
            LayerKind::BatchNorm { activation, .. } => {
                let channels = image(input).map_or(inputs_cols, |(c, _, _)| c);
                let mut params = norm(channels, "");
                params.extend(slopes(activation, input));
                params
            }
            LayerKind::Activation { activation } | LayerKind::Add { activation } => slopes(activation, input),
            LayerKind::Residual { shortcut, activation } => {
                let (body, from) = (inputs[0], inputs[1]);
                let mut params = Vec::new();
                if shortcut == Shortcut::Project {
                    match (image(from), image(body)) {
                        (Some((c, _, _)), Some((f, _, _))) => {
                            params.push(ParamShape {
                                part: "project",
                                ..ParamShape::new(ParamKind::Filter, f, c)
                            });
                            params.extend(norm(f, "project_bn"));
                        }
                        _ => params.push(ParamShape {
                            part: "project",
                            ..ParamShape::new(ParamKind::Weight, from.cols(), body.cols())
                        }),
                    }
                }
                params.extend(slopes(activation, body));
                params
            }
            LayerKind::Dropout { .. }
            | LayerKind::Pool { .. }
            | LayerKind::GlobalPool
            | LayerKind::Flatten
            | LayerKind::Concat => Vec::new(),
        }
    }

    /// Linear units with weights: a maxout's fixed-zero pieces have none.
    pub fn learned_units(&self) -> usize {
        match self.kind {
            LayerKind::Dense { width, .. } => width,
            LayerKind::Maxout {
                units,
                pieces,
                fixed_zero: true,
                ..
            } => units / pieces.max(1) * (pieces.max(1) - 1),
            LayerKind::Maxout { units, .. } => units,
            _ => 0,
        }
    }

    /// A short word for the kind, as written in specs.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            LayerKind::Dense { .. } => "dense",
            LayerKind::Maxout { .. } => "maxout",
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::Conv { .. } => "conv",
            LayerKind::Pool { op: PoolKind::Max, .. } => "maxpool",
            LayerKind::Pool { op: PoolKind::Avg, .. } => "avgpool",
            LayerKind::GlobalPool => "global_avgpool",
            LayerKind::BatchNorm { .. } => "batchnorm",
            LayerKind::Flatten => "flatten",
            LayerKind::Activation { .. } => "activation",
            LayerKind::Add { .. } => "add",
            LayerKind::Residual { .. } => "residual",
            LayerKind::Concat => "concat",
        }
    }

    /// The activation the layer ends with, if it has one.
    pub fn activation(&self) -> Option<Activation> {
        match self.kind {
            LayerKind::Dense { activation, .. }
            | LayerKind::Conv { activation, .. }
            | LayerKind::BatchNorm { activation, .. }
            | LayerKind::Activation { activation }
            | LayerKind::Add { activation }
            | LayerKind::Residual { activation, .. } => Some(activation),
            _ => None,
        }
    }

    /// True for layers with learned weights (dense, maxout, conv): what a model needs at least
    /// one of.
    pub fn has_weights(&self) -> bool {
        matches!(
            self.kind,
            LayerKind::Dense { .. } | LayerKind::Maxout { .. } | LayerKind::Conv { .. }
        )
    }
}

/// Elementwise activations.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Activation {
    /// Identity.
    Linear,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `max(0, x)`.
    Relu,
    /// `x` if positive, else `alpha x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f64,
    },
    /// Leaky ReLU whose slope is learned, one per unit.
    Prelu {
        /// Initial slope.
        initial: f64,
    },
    /// `x` if positive, else `alpha (e^x - 1)`.
    Elu {
        /// Saturation value for large negative inputs.
        alpha: f64,
    },
    /// Normalized exponentials over the row (output layers only).
    Softmax,
}

impl Activation {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Prelu { .. } => "prelu",
            Activation::Elu { .. } => "elu",
            Activation::Softmax => "softmax",
        }
    }

    /// True for activations whose gradient vanishes when the input saturates.
    pub fn saturates(self) -> bool {
        matches!(self, Activation::Sigmoid | Activation::Tanh)
    }

    /// True for the ReLU family, whose default initializer is He's.
    pub fn is_rectifier(self) -> bool {
        matches!(
            self,
            Activation::Relu | Activation::LeakyRelu { .. } | Activation::Prelu { .. } | Activation::Elu { .. }
        )
    }
}

/// Weight initializers. Biases start at the layer's `bias` value (0 by default).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Init {
    /// Normal with std `sqrt(2 / fan_in)`.
    He,
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))` (Glorot).
    Xavier,
    /// Normal with the given std.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Uniform in `[-limit, limit]`.
    Uniform {
        /// Half-width of the interval.
        limit: f64,
    },
}

impl Init {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Init::He => "he",
            Init::Xavier => "xavier",
            Init::Normal { .. } => "normal",
            Init::Uniform { .. } => "uniform",
        }
    }
}

/// Dropout's two equivalent forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DropoutMode {
    /// Scale kept units by `1/(1-p)` while training; nothing at test time.
    Inverted,
    /// The lecture's form: no scaling while training; at test time multiply by `1-p`.
    ScaleAtTest,
}

/// Losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Loss {
    /// Softmax cross-entropy over classes (output activation softmax).
    CrossEntropy,
    /// Sigmoid cross-entropy per output (output activation sigmoid).
    BinaryCrossEntropy,
    /// Mean squared error against one-hot targets.
    Mse,
}

impl Loss {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross_entropy",
            Loss::BinaryCrossEntropy => "binary_cross_entropy",
            Loss::Mse => "mse",
        }
    }
}

/// L1 and L2 strengths (0 = off). Never applied to biases.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Regularization {
    /// Adds `l1 * sum |w|` to the loss.
    pub l1: f64,
    /// Adds `l2 / 2 * sum w^2` to the loss (weight decay of `lr * l2` per step under sgd).
    pub l2: f64,
}

/// A layer's own `l1`/`l2` options, each replacing the global strength of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct LayerRegularization {
    /// The layer's L1 strength, if given.
    pub l1: Option<f64>,
    /// The layer's L2 strength, if given.
    pub l2: Option<f64>,
}

impl LayerRegularization {
    /// The strengths that apply to this layer under a global setting.
    pub fn resolve(self, global: Regularization) -> Regularization {
        Regularization {
            l1: self.l1.unwrap_or(global.l1),
            l2: self.l2.unwrap_or(global.l2),
        }
    }
}

impl Layer {
    /// What the layer computes, as one canonical line: the kind and every setting that changes
    /// its output (not initializers). Weights files store these (`run::provenance`), and
    /// `check --summary` shows them.
    pub fn describe(&self) -> String {
        let act = |a: Activation| match a {
            Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => format!("{}({alpha})", a.name()),
            other => other.name().to_string(),
        };
        match &self.kind {
            LayerKind::Dense { width, activation, .. } => format!("dense {width} {}", act(*activation)),
            LayerKind::Maxout {
                units,
                pieces,
                fixed_zero,
                ..
            } => format!(
                "maxout {units} pieces {pieces}{}",
                if *fixed_zero { " fixed_zero" } else { "" }
            ),
            LayerKind::Dropout { rate, mode } => format!("dropout {rate} {mode:?}"),
            LayerKind::Conv {
                filters,
                kernel,
                stride,
                padding,
                bias,
                activation,
                ..
            } => format!(
                "conv {filters} kernel {kernel} stride {stride} pad {}{} {}",
                padding.describe(),
                if bias.is_some() { "" } else { " no_bias" },
                act(*activation)
            ),
            LayerKind::Pool {
                op,
                window,
                stride,
                padding,
            } => format!(
                "{} {window} stride {stride} pad {}",
                if *op == PoolKind::Max { "maxpool" } else { "avgpool" },
                padding.describe()
            ),
            LayerKind::GlobalPool => "global_avgpool".to_string(),
            LayerKind::BatchNorm {
                momentum,
                eps,
                activation,
            } => format!("batchnorm momentum {momentum} eps {eps} {}", act(*activation)),
            LayerKind::Flatten => "flatten".to_string(),
            LayerKind::Activation { activation } => format!("activation {}", act(*activation)),
            LayerKind::Add { activation } => format!("add {}", act(*activation)),
            LayerKind::Residual { shortcut, activation } => format!(
                "residual shortcut {} {}",
                match shortcut {
                    Shortcut::Identity => "identity",
                    Shortcut::Project => "project",
                },
                act(*activation)
            ),
            LayerKind::Concat => "concat".to_string(),
        }
    }
}

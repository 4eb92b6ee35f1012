//! The inference form of a trained graph: what `netc build` compiles.
//!
//! [`inference`] keeps the forward nodes the output depends on (no targets, loss, backward or
//! update nodes, no batch statistics) and folds what is constant at test time into the
//! parameters:
//! - a dropout multiplies by a constant at test time (`1 - p` for `scale_at_test`, 1 for
//!   inverted dropout): its mask and product disappear;
//! - the input normalization `x' = (x - shift) * scale` is an affine map of the raw input;
//! - batch normalization at test time is the per-channel affine map `y = x a + b` with
//!   `a = scale / sqrt(running_var + eps)` and `b = shift - running_mean a`. When it reads a
//!   convolution or a matrix product (directly, or through the bias row added to it) that
//!   nothing else reads, it goes into that product's filters or weights (`w'[f] = w[f] a[f]`)
//!   and bias row (`b' = bias a + b`, a new row when the product has no bias);
//! - a per-channel row spread over an image's positions ([`ChannelOp::Expand`] of a conv bias
//!   or prelu slopes) becomes a constant `[1, channels * positions]` parameter row.
//!
//! The first three are one rule: a value of the training graph is tracked as an affine function
//! of its counterpart in the inference graph, column by column ([`Fold`]), until an op absorbs
//! it: a matrix product takes the scale into its weights' rows and turns the offset into an
//! offset of its output (`offset W`); a convolution takes a scale that is constant over each
//! channel into its filters and turns the offset image into the offset image of its output
//! (the offset convolved with the filters, over the taps inside the image: exact at the borders
//! of a padded convolution, where zero padding of the normalized image is not zero padding of
//! the raw one); a bias row takes an offset; pooling, concatenation and sums pass a fold they
//! commute with through. Any other op reads the value with its fold applied: an explicit
//! multiply by a constant row and add of a constant row (elementwise kernels broadcast
//! `[1, cols]` rows), which is also what a batch normalization that cannot go into the product
//! before it becomes when no product after it takes it.

use crate::graph::{Graph, Node, NodeId, Op, Param, ParamInit};
use crate::ir::{Arena, ParamKind, Regularization, Shape, Window};
use crate::ops::{ArithOp, ChannelOp, ConvOp, DropoutOp, LinearOp, NormOp, PoolOp};
use ndarray::Array2;

/// An inference graph and the parameter values it computes with.
#[derive(Debug, Clone)]
pub struct Inference {
    /// The forward piece only: `targets` and `loss` are `None`, `backward` and `update` empty.
    /// Its parameters are the training graph's, then the constant rows the folds made.
    pub graph: Graph,
    /// Parameter values with normalization, dropout and batch normalization folded in,
    /// indexed like `graph.params`.
    pub params: Vec<Array2<f32>>,
}

/// How a value of the training graph relates to its inference counterpart, per column:
/// `training = inference * scale + offset` (absent parts are 1 and 0).
#[derive(Debug, Clone, Default, PartialEq)]
struct Fold {
    scale: Option<Vec<f64>>,
    offset: Option<Vec<f64>>,
}

impl Fold {
    /// The fold with these parts, leaving out a scale of ones and an offset of zeros.
    fn new(scale: Vec<f64>, offset: Vec<f64>) -> Fold {
        Fold {
            scale: scale.iter().any(|&k| k != 1.0).then_some(scale),
            offset: offset.iter().any(|&o| o != 0.0).then_some(offset),
        }
    }

    fn is_identity(&self) -> bool {
        self.scale.is_none() && self.offset.is_none()
    }

    /// The raw input against the normalized one: `x' = x * scale - shift * scale`.
    fn of_normalization(shift: &[f32], scale: &[f32]) -> Fold {
        let scale: Vec<f64> = scale.iter().map(|&k| k as f64).collect();
        let offset: Vec<f64> = shift.iter().zip(&scale).map(|(&s, &k)| -(s as f64) * k).collect();
        Fold::new(scale, offset)
    }

    /// The scale of every one of `cols` columns.
    fn scales(&self, cols: usize) -> Vec<f64> {
        self.scale.clone().unwrap_or_else(|| vec![1.0; cols])
    }

    /// The offset of every one of `cols` columns.
    fn offsets(&self, cols: usize) -> Vec<f64> {
        self.offset.clone().unwrap_or_else(|| vec![0.0; cols])
    }

    /// This fold followed by a multiplication by `factor`.
    fn times(&self, factor: f64, cols: usize) -> Fold {
        if factor == 1.0 {
            return self.clone();
        }
        let scale = self.scales(cols);
        Fold {
            scale: Some(scale.iter().map(|k| k * factor).collect()),
            offset: self.offset.as_ref().map(|o| o.iter().map(|v| v * factor).collect()),
        }
    }

    /// This fold followed by the per-channel affine map `y = x a[c] + b[c]` over channels of
    /// `spatial` columns each.
    fn then_affine(&self, a: &[f64], b: &[f64], spatial: usize) -> Fold {
        let cols = a.len() * spatial;
        let (scale, offset) = (self.scales(cols), self.offsets(cols));
        Fold::new(
            (0..cols).map(|j| scale[j] * a[j / spatial]).collect(),
            (0..cols).map(|j| offset[j] * a[j / spatial] + b[j / spatial]).collect(),
        )
    }
}

/// One value per channel when `values` is constant over each channel's `spatial` columns.
fn per_channel(values: &[f64], spatial: usize) -> Option<Vec<f64>> {
    values
        .chunks(spatial)
        .map(|block| block.iter().all(|&v| v == block[0]).then_some(block[0]))
        .collect()
}

/// Each channel's value repeated `spatial` times.
fn spread(per_channel: &[f64], spatial: usize) -> Vec<f64> {
    per_channel
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, spatial))
        .collect()
}

/// The convolution of one image `x` (a row of `g.input_len()` values) with the filters `w`,
/// over the taps inside the image, as [`ConvOp::Conv`] computes it: `filters * positions`
/// values.
fn convolve(w: &Array2<f32>, g: &Window, x: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(w.nrows() * g.positions());
    for f in 0..w.nrows() {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let mut sum = 0.0;
                for c in 0..g.channels {
                    for ky in 0..g.kernel_h {
                        let Some(iy) = g.input_y(oy, ky) else { continue };
                        for kx in 0..g.kernel_w {
                            let Some(ix) = g.input_x(ox, kx) else { continue };
                            let tap = (c * g.kernel_h + ky) * g.kernel_w + kx;
                            sum += w[[f, tap]] as f64 * x[(c * g.height + iy) * g.width + ix];
                        }
                    }
                }
                out.push(sum);
            }
        }
    }
    out
}

/// The average pooling of one image `x`, as [`PoolOp::AvgPool`] computes it (the mean of each
/// window's taps inside the image).
fn average_pool(g: &Window, x: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(g.channels * g.positions());
    for c in 0..g.channels {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let (mut sum, mut count) = (0.0, 0usize);
                for iy in (0..g.kernel_h).filter_map(|ky| g.input_y(oy, ky)) {
                    for ix in (0..g.kernel_w).filter_map(|kx| g.input_x(ox, kx)) {
                        sum += x[(c * g.height + iy) * g.width + ix];
                        count += 1;
                    }
                }
                out.push(sum / count.max(1) as f64);
            }
        }
    }
    out
}

/// The inference graph of a training graph, with `params` (its trained values, indexed like
/// `graph.params`) and the input normalization `x' = (x - shift) * scale` (one value per
/// feature, as `crate::data::Normalization` holds them) folded into the parameters. Evaluated
/// on raw inputs, the result computes what the training graph computes in evaluation mode on
/// normalized ones.
pub fn inference(graph: &Graph, params: &[Array2<f32>], shift: &[f32], scale: &[f32]) -> Inference {
    // The nodes the output depends on in evaluation mode (forward lists are in dependency
    // order), and how many of them read each node. A normalization reads its batch statistics
    // only while training.
    let reads = |op: &Op| -> Vec<NodeId> {
        match *op {
            Op::Norm(NormOp::Normalize {
                x,
                mean,
                var,
                scale,
                shift,
                ..
            }) => vec![x, mean, var, scale, shift],
            ref other => other.inputs(),
        }
    };
    let mut needed = vec![false; graph.nodes.len()];
    needed[graph.output.index()] = true;
    let mut consumers = vec![0usize; graph.nodes.len()];
    for &n in graph.forward.iter().rev() {
        if needed[n.index()] {
            for i in reads(&graph.nodes[n].op) {
                needed[i.index()] = true;
                consumers[i.index()] += 1;
            }
        }
    }
    let mut rebuild = Rebuild {
        graph,
        values: params.to_vec(),
        params: graph.params.clone(),
        consumers,
        nodes: Arena::new(),
        new_of: vec![None; graph.nodes.len()],
        fold_of: vec![Fold::default(); graph.nodes.len()],
        forward: Vec::new(),
    };
    let input = rebuild.nodes.append(graph.nodes[graph.input].clone());
    rebuild.new_of[graph.input.index()] = Some(input);
    rebuild.fold_of[graph.input.index()] = Fold::of_normalization(shift, scale);
    for &n in graph.forward.iter().filter(|n| needed[n.index()]) {
        rebuild.node(n);
    }
    // An output that is still folded (a batch normalization or the input itself) is computed.
    rebuild.materialize(graph.output, false);
    let output = rebuild.new_of[graph.output.index()].expect("the output is computed");
    Inference {
        graph: Graph {
            nodes: rebuild.nodes,
            params: rebuild.params,
            input,
            targets: None,
            output,
            loss: None,
            penalty: None,
            forward: rebuild.forward,
            backward: Vec::new(),
            grads: Vec::new(),
            update: Vec::new(),
            layers: graph.layers.clone(),
            optimizer: graph.optimizer,
            input_width: graph.input_width,
            output_width: graph.output_width,
        },
        params: rebuild.values,
    }
}

/// The inference graph under construction, node by node of the training graph's forward piece.
struct Rebuild<'g> {
    graph: &'g Graph,
    /// The parameter values with folds applied, then the constant rows.
    values: Vec<Array2<f32>>,
    /// The training graph's parameters, then the constant rows.
    params: Vec<Param>,
    /// How many of the needed forward nodes read each training node.
    consumers: Vec<usize>,
    nodes: Arena<Node>,
    /// Each training node's counterpart (a dropout's is its input's).
    new_of: Vec<Option<NodeId>>,
    /// Each training node against its counterpart.
    fold_of: Vec<Fold>,
    forward: Vec<NodeId>,
}

impl Rebuild<'_> {
    /// Adds the counterpart of forward node `n`, or folds it away.
    fn node(&mut self, n: NodeId) {
        let graph = self.graph;
        let node = &graph.nodes[n];
        let cols = node.shape.cols();
        // The node's value against its counterpart, and the inputs whose folds it absorbs.
        let mut fold = Fold::default();
        let mut absorbs: Vec<NodeId> = Vec::new();
        match node.op {
            // Read only by its product, which folds the mask's test-time value.
            Op::Dropout(DropoutOp::Mask { .. }) => return,
            Op::Arith(ArithOp::Mul { a, b }) if is_mask(graph, a) || is_mask(graph, b) => {
                let (x, mask) = if is_mask(graph, b) { (a, b) } else { (b, a) };
                let Op::Dropout(DropoutOp::Mask { rate, mode, .. }) = graph.nodes[mask].op else {
                    unreachable!("checked by is_mask")
                };
                self.new_of[n.index()] = self.new_of[x.index()];
                self.fold_of[n.index()] = self.fold_of[x.index()].times(DropoutOp::test_scale(rate, mode), cols);
                return;
            }
            Op::Norm(NormOp::Normalize { .. }) => return self.batchnorm(n),
            Op::Channel(ChannelOp::Expand { x, spatial }) if matches!(graph.nodes[x].op, Op::Param(_)) => {
                let p = self.param_index(x);
                let values: Vec<f64> = self.values[p].iter().map(|&v| v as f64).collect();
                let name = format!("{}.expanded", self.params[p].name);
                let row = self.constant_row(name, self.params[p].layer, &spread(&values, spatial));
                self.new_of[n.index()] = Some(row);
                return;
            }
            Op::Linear(LinearOp::MatMul {
                a,
                b,
                transpose_a: false,
                transpose_b: false,
            }) if !self.fold_of[a.index()].is_identity() => {
                // a W = (a' diag(scale) + offset) W = a' (diag(scale) W) + offset W.
                absorbs.push(a);
                let Fold { scale, offset } = self.fold_of[a.index()].clone();
                let w = &self.values[self.param_index(b)];
                fold.offset = offset.map(|offset| {
                    (0..w.ncols())
                        .map(|j| (0..w.nrows()).map(|i| offset[i] * w[[i, j]] as f64).sum())
                        .collect()
                });
                if let Some(scale) = scale {
                    self.fold_into(b, |w| {
                        for (mut row, &k) in w.rows_mut().into_iter().zip(&scale) {
                            row.mapv_inplace(|v| (v as f64 * k) as f32);
                        }
                    });
                }
            }
            Op::Conv(ConvOp::Conv { x, w, ref g }) if !self.fold_of[x.index()].is_identity() => {
                let spatial = g.height * g.width;
                if per_channel(&self.fold_of[x.index()].scales(g.input_len()), spatial).is_none() {
                    // A scale that varies within a channel is no scale of the filters.
                    self.materialize(x, true);
                }
                absorbs.push(x);
                let Fold { scale, offset } = self.fold_of[x.index()].clone();
                // conv(x' k + o) = conv_{w k}(x') + conv_w(o), with the filters before scaling.
                fold.offset = offset.map(|o| convolve(&self.values[self.param_index(w)], g, &o));
                if let Some(scale) = scale {
                    let k = per_channel(&scale, spatial).expect("materialized above otherwise");
                    let taps = g.taps();
                    self.fold_into(w, |w| {
                        for mut filter in w.rows_mut() {
                            for (j, v) in filter.iter_mut().enumerate() {
                                *v = (*v as f64 * k[j / taps]) as f32;
                            }
                        }
                    });
                }
            }
            Op::Linear(LinearOp::AddRow { x, row }) if !self.fold_of[x.index()].is_identity() => {
                if self.fold_of[x.index()].scale.is_some() {
                    self.materialize(x, true);
                }
                if let Some(offset) = self.fold_of[x.index()].offset.clone() {
                    absorbs.push(x);
                    self.fold_into(row, |b| {
                        for (v, &o) in b.iter_mut().zip(&offset) {
                            *v = (*v as f64 + o) as f32;
                        }
                    });
                }
            }
            Op::Pool(PoolOp::MaxPool { x, ref g }) => {
                let spatial = g.height * g.width;
                let input = &self.fold_of[x.index()];
                let scale = per_channel(&input.scales(g.input_len()), spatial);
                let offset = per_channel(&input.offsets(g.input_len()), spatial);
                // max(x k + o) = max(x) k + o for k > 0 and o constant over the window.
                if let (Some(k), Some(o)) = (scale, offset)
                    && k.iter().all(|&k| k > 0.0)
                {
                    absorbs.push(x);
                    fold = Fold::new(spread(&k, g.positions()), spread(&o, g.positions()));
                }
            }
            Op::Pool(PoolOp::AvgPool { x, ref g }) => {
                let input = &self.fold_of[x.index()];
                if let Some(k) = per_channel(&input.scales(g.input_len()), g.height * g.width) {
                    // mean(x k + o) = mean(x) k + mean(o) for k constant over the window.
                    absorbs.push(x);
                    let offset = input
                        .offset
                        .as_ref()
                        .map_or_else(|| vec![0.0; g.channels * g.positions()], |o| average_pool(g, o));
                    fold = Fold::new(spread(&k, g.positions()), offset);
                }
            }
            Op::Channel(ChannelOp::Concat { ref parts, .. }) => {
                let (mut scale, mut offset) = (Vec::with_capacity(cols), Vec::with_capacity(cols));
                for &p in parts {
                    let part_cols = graph.nodes[p].shape.cols();
                    scale.extend(self.fold_of[p.index()].scales(part_cols));
                    offset.extend(self.fold_of[p.index()].offsets(part_cols));
                }
                absorbs.extend(parts);
                fold = Fold::new(scale, offset);
            }
            Op::Arith(ArithOp::Add { a, b }) if self.fold_of[a.index()].scale == self.fold_of[b.index()].scale => {
                // (a' k + o_a) + (b' k + o_b) = (a' + b') k + (o_a + o_b).
                let (fa, fb) = (&self.fold_of[a.index()], &self.fold_of[b.index()]);
                let (oa, ob) = (fa.offsets(cols), fb.offsets(cols));
                fold = Fold::new(fa.scales(cols), oa.iter().zip(&ob).map(|(x, y)| x + y).collect());
                absorbs.extend([a, b]);
            }
            _ => {}
        }
        for i in node.op.inputs() {
            if !absorbs.contains(&i) {
                self.materialize(i, false);
            }
            self.counterpart(i);
        }
        let new_of = &self.new_of;
        let op = node
            .op
            .map_inputs(|i| new_of[i.index()].expect("inputs were added just above"));
        let h = self.append(op, node.shape, node.layer);
        self.new_of[n.index()] = Some(h);
        self.fold_of[n.index()] = fold;
    }

    /// Batch normalization at test time, `x a + b` per channel: into the product before it
    /// when that is its own, otherwise a fold for the ops after it.
    fn batchnorm(&mut self, n: NodeId) {
        let Op::Norm(NormOp::Normalize {
            x,
            mean,
            var,
            scale,
            shift,
            eps,
            channels,
            spatial,
            ..
        }) = self.graph.nodes[n].op
        else {
            unreachable!("called for normalizations")
        };
        let value = |p: NodeId| -> Vec<f64> {
            let Op::Param(p) = self.graph.nodes[p].op else {
                unreachable!("batch normalization's statistics, scale and shift are parameters")
            };
            self.values[p].iter().map(|&v| v as f64).collect()
        };
        let (mean, var, scale, shift) = (value(mean), value(var), value(scale), value(shift));
        debug_assert_eq!(mean.len(), channels);
        let a: Vec<f64> = (0..channels).map(|c| scale[c] / (var[c] + eps).sqrt()).collect();
        let b: Vec<f64> = (0..channels).map(|c| shift[c] - mean[c] * a[c]).collect();
        if !self.fold_into_product(n, x, &a, &b, spatial) {
            self.new_of[n.index()] = self.new_of[x.index()];
            self.fold_of[n.index()] = self.fold_of[x.index()].then_affine(&a, &b, spatial);
        }
    }

    /// Folds `y = x a + b` (per channel of `spatial` columns) into the convolution or matrix
    /// product that computes `x`, directly or through its bias row, when nothing else reads
    /// them: `w'[f] = w[f] a[f]` and the bias row `(bias + offset) a + b`. False when `x` is no
    /// such product.
    fn fold_into_product(&mut self, n: NodeId, x: NodeId, a: &[f64], b: &[f64], spatial: usize) -> bool {
        let graph = self.graph;
        if self.consumers[x.index()] != 1 || self.fold_of[x.index()].scale.is_some() {
            return false;
        }
        let (product, row) = match graph.nodes[x].op {
            Op::Linear(LinearOp::AddRow { x: p, row }) => (p, Some(row)),
            _ => (x, None),
        };
        // The product's own offset, if any, is in the bias row already.
        if row.is_some() && self.consumers[product.index()] != 1 {
            return false;
        }
        match graph.nodes[product].op {
            Op::Conv(ConvOp::Conv { w, .. }) => self.fold_into(w, |w| {
                for (mut filter, &k) in w.rows_mut().into_iter().zip(a) {
                    filter.mapv_inplace(|v| (v as f64 * k) as f32);
                }
            }),
            Op::Linear(LinearOp::MatMul {
                b: w,
                transpose_a: false,
                transpose_b: false,
                ..
            }) => self.fold_into(w, |w| {
                for (mut column, &k) in w.columns_mut().into_iter().zip(a) {
                    column.mapv_inplace(|v| (v as f64 * k) as f32);
                }
            }),
            _ => return false,
        }
        let cols = a.len() * spatial;
        let offset = self.fold_of[x.index()].offsets(cols);
        let affine = |j: usize, v: f64| (v + offset[j]) * a[j / spatial] + b[j / spatial];
        match row {
            Some(row) => {
                self.fold_into(row, |r| {
                    for (j, v) in r.iter_mut().enumerate() {
                        *v = affine(j, *v as f64) as f32;
                    }
                });
                self.new_of[n.index()] = self.new_of[x.index()];
            }
            None => {
                let layer = graph.nodes[n].layer;
                let name = format!("{}.folded_bias", self.layer_name(layer));
                let values: Vec<f64> = (0..cols).map(|j| affine(j, 0.0)).collect();
                let row = self.constant_row(name, layer.unwrap_or(0), &values);
                let x = self.new_of[x.index()].expect("computed before its normalization");
                let shape = graph.nodes[n].shape;
                self.new_of[n.index()] = Some(self.append(Op::Linear(LinearOp::AddRow { x, row }), shape, layer));
            }
        }
        self.fold_of[n.index()] = Fold::default();
        true
    }

    /// Makes the counterpart of training node `n` compute its training value: multiplies it by
    /// its fold's scale row and adds the offset row (only the scale when `keep_offset`, for an
    /// op that absorbs the offset).
    fn materialize(&mut self, n: NodeId, keep_offset: bool) {
        if self.fold_of[n.index()].is_identity() {
            return;
        }
        let Fold { scale, offset } = std::mem::take(&mut self.fold_of[n.index()]);
        let node = &self.graph.nodes[n];
        let (shape, layer) = (node.shape, node.layer);
        let name = self.layer_name(layer);
        let mut h = self.new_of[n.index()].expect("a folded value has a counterpart");
        if let Some(scale) = scale {
            let row = self.constant_row(format!("{name}.fold_scale"), layer.unwrap_or(0), &scale);
            h = self.append(Op::Arith(ArithOp::Mul { a: h, b: row }), shape, layer);
        }
        if keep_offset {
            self.fold_of[n.index()].offset = offset;
        } else if let Some(offset) = offset {
            let row = self.constant_row(format!("{name}.fold_offset"), layer.unwrap_or(0), &offset);
            h = self.append(Op::Linear(LinearOp::AddRow { x: h, row }), shape, layer);
        }
        self.new_of[n.index()] = Some(h);
    }

    /// The counterpart of training node `n`; parameters join the graph where first read.
    fn counterpart(&mut self, n: NodeId) -> NodeId {
        if let Some(h) = self.new_of[n.index()] {
            return h;
        }
        assert!(
            matches!(self.graph.nodes[n].op, Op::Param(_)),
            "forward lists are in dependency order"
        );
        let h = self.nodes.append(self.graph.nodes[n].clone());
        self.new_of[n.index()] = Some(h);
        h
    }

    /// Appends a forward node.
    fn append(&mut self, op: Op, shape: Shape, layer: Option<usize>) -> NodeId {
        let h = self.nodes.append(Node { op, shape, layer });
        self.forward.push(h);
        h
    }

    /// A new `[1, values.len()]` parameter holding `values`, and its node.
    fn constant_row(&mut self, name: String, layer: usize, values: &[f64]) -> NodeId {
        self.params.push(Param {
            name,
            rows: 1,
            cols: values.len(),
            kind: ParamKind::Bias,
            init: ParamInit::Constant(0.0),
            layer,
            regularization: Regularization::default(),
            file_shape: vec![values.len()],
            follows: None,
        });
        self.values
            .push(Array2::from_shape_fn((1, values.len()), |(_, j)| values[j] as f32));
        let shape = Shape::fixed(1, values.len());
        self.nodes.append(Node {
            op: Op::Param(self.params.len() - 1),
            shape,
            layer: Some(layer),
        })
    }

    fn layer_name(&self, layer: Option<usize>) -> String {
        layer.map_or_else(|| "input".to_string(), |l| self.graph.layers[l].name.clone())
    }

    fn param_index(&self, n: NodeId) -> usize {
        match self.graph.nodes[n].op {
            Op::Param(p) => p,
            ref other => unreachable!("graph::build adds bias rows and weights as parameters, not {other:?}"),
        }
    }

    /// Applies `f` to the value of the parameter that is the counterpart of training node `n`
    /// (a parameter, or a per-channel row made constant).
    fn fold_into(&mut self, n: NodeId, f: impl FnOnce(&mut Array2<f32>)) {
        // graph::build gives every layer its own parameters, each read by one forward op.
        assert_eq!(
            self.consumers[n.index()],
            1,
            "a folded parameter is read by one op only"
        );
        let h = self.counterpart(n);
        let Op::Param(p) = self.nodes[h].op else {
            unreachable!("folds go into parameters, not {:?}", self.nodes[h].op)
        };
        f(&mut self.values[p]);
    }
}

fn is_mask(graph: &Graph, n: NodeId) -> bool {
    matches!(graph.nodes[n].op, Op::Dropout(DropoutOp::Mask { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Limits;
    use crate::diag::source::SourceMap;
    use crate::rng::Rng;

    fn training_graph(body: &str) -> Graph {
        let text = format!("model m {{\n  {body}\n}}\ntrain {{\n  data \"x.csv\" validation 10%\n}}\n");
        let mut sources = SourceMap::new();
        let id = sources.add("m.net", text.clone());
        let compiled = crate::compile(&sources, id, &[], &Limits { memory_bytes: 1 << 30 });
        let rendered = crate::diag::render_plain(&sources, &compiled.diagnostics);
        let checked = compiled
            .checked
            .unwrap_or_else(|| panic!("the spec checks clean:\n{rendered}\n{text}"));
        crate::graph::build(&checked)
    }

    /// The output of a graph's forward piece in evaluation mode, by the ops' reference
    /// evaluation (what the interpreter runs; `tests/aot.rs` runs the interpreter itself).
    fn evaluate(graph: &Graph, params: &[Array2<f32>], x: &Array2<f32>) -> Array2<f32> {
        let mut values: Vec<Option<Array2<f32>>> = vec![None; graph.nodes.len()];
        values[graph.input.index()] = Some(x.clone());
        if let Some(t) = graph.targets {
            values[t.index()] = Some(Array2::zeros((x.nrows(), graph.output_width)));
        }
        for &node in &graph.forward {
            let cx = crate::ops::EvalCx {
                nodes: &graph.nodes,
                values: &values,
                params,
                node,
                training: false,
                step: 0,
                seed: 1,
            };
            values[node.index()] = Some(graph.nodes[node].op.eval(&cx));
        }
        values[graph.output.index()].take().expect("the output is computed")
    }

    /// Random parameters, larger than the initial ones; running variances positive, and
    /// running means away from zero, as after training.
    fn random_params(graph: &Graph, rng: &mut Rng) -> Vec<Array2<f32>> {
        graph
            .params
            .iter()
            .map(|p| {
                Array2::from_shape_fn((p.rows, p.cols), |_| match p.kind {
                    ParamKind::RunningVar => (0.2 + rng.normal().abs() * 1.5) as f32,
                    ParamKind::RunningMean => (rng.normal() * 0.8) as f32,
                    _ => (rng.normal() * 0.7) as f32,
                })
            })
            .collect()
    }

    /// The folded inference graph on raw rows against the training graph (evaluation mode) on
    /// normalized rows; returns the inference graph.
    fn check_folding(case: &str, body: &str, per_feature: bool, seed: u64) -> Inference {
        let graph = training_graph(body);
        let mut rng = Rng::new(seed, 7);
        let params = random_params(&graph, &mut rng);
        let width = graph.input_width;
        // Per feature (as `normalize standard` fits it), or one scale for all (`normalize scale`).
        let (shift, scale): (Vec<f32>, Vec<f32>) = if per_feature {
            (
                (0..width).map(|i| (i % 7) as f32 * 0.3 - 0.5).collect(),
                (0..width).map(|i| 0.5 + (i % 5) as f32 * 0.25).collect(),
            )
        } else {
            (vec![0.0; width], vec![0.6; width])
        };
        let raw = Array2::from_shape_fn((9, width), |_| (rng.normal() * 2.0) as f32);
        let normalized = Array2::from_shape_fn(raw.dim(), |(r, c)| (raw[[r, c]] - shift[c]) * scale[c]);

        let folded = inference(&graph, &params, &shift, &scale);
        for (_, node) in folded.graph.nodes.iter() {
            assert!(
                !matches!(
                    node.op,
                    Op::Dropout(_) | Op::Loss(_) | Op::Targets | Op::Norm(_) | Op::Channel(ChannelOp::Expand { .. })
                ),
                "{case}: {:?} is left",
                node.op
            );
        }
        assert!(folded.graph.backward.is_empty() && folded.graph.update.is_empty());
        assert_eq!(folded.graph.forward.last(), Some(&folded.graph.output));
        assert_eq!(folded.params.len(), folded.graph.params.len());

        let want = evaluate(&graph, &params, &normalized);
        let got = evaluate(&folded.graph, &folded.params, &raw);
        assert_eq!(got.dim(), want.dim());
        let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()) + 1e-5 * largest,
                "{case}: {g} vs {w}\n{body}"
            );
        }
        folded
    }

    /// How many nodes of the inference graph run `name`.
    fn count(folded: &Inference, name: &str) -> usize {
        folded.graph.nodes.iter().filter(|(_, n)| n.op.name() == name).count()
    }

    /// For every layer kind, activation, dropout mode and loss.
    #[test]
    fn the_inference_graph_computes_what_the_training_graph_does() {
        let specs = [
            "input 5\n  dense 7 relu\n  dropout 0.3 scale_at_test\n  dense 3 softmax\n  loss cross_entropy",
            "input 3\n  dropout 0.2\n  maxout 12 pieces 3\n  dense 17 prelu(0.2)\n  dense 2 softmax\n  loss cross_entropy",
            "input 4\n  dropout 0.5 scale_at_test\n  dropout 0.2 scale_at_test\n  dense 6 tanh\n  dense 1 sigmoid\n  loss binary_cross_entropy",
            "input 4\n  maxout 9 pieces 3 fixed_zero\n  dropout 0.4 scale_at_test\n  maxout 6 pieces 2 fixed_zero\n  dense 3 linear\n  loss mse",
            "input 2\n  dense 3 softmax\n  dense 5 elu(0.5)\n  dense 4 leaky_relu(0.1)\n  loss mse",
        ];
        for (case, body) in specs.iter().enumerate() {
            let folded = check_folding(&format!("case {case}"), body, true, case as u64);
            let ops: Vec<&Op> = folded.graph.nodes.iter().map(|(_, n)| &n.op).collect();
            assert!(ops.iter().all(|op| !matches!(op, Op::Arith(_))), "case {case}: {ops:?}");
        }
    }

    /// Batch normalization after a convolution or a dense layer goes into its filters or
    /// weights and bias row (a new row without a bias): no multiply is left.
    #[test]
    fn batchnorm_after_a_product_goes_into_its_parameters() {
        let specs = [
            // Bias, same padding; then pooling.
            "input 2 7 7\n  conv 5 kernel 3 pad same\n  batchnorm relu\n  maxpool 2\n  dense 3 softmax\n  loss cross_entropy",
            // No bias, stride 2, explicit padding; average pooling with same padding.
            "input 3 8 8\n  conv 4 kernel 3 stride 2 pad 1 no_bias\n  batchnorm relu\n  avgpool 2 pad same\n  dense 2 softmax\n  loss cross_entropy",
            // Flat: a dense layer's weight columns.
            "input 5\n  dense 6\n  batchnorm relu\n  dense 6\n  batchnorm tanh\n  dense 3 softmax\n  loss cross_entropy",
            // A residual block with a projection (its 1x1 convolution and batchnorm).
            "input 2 6 6\n  conv c1: 4 kernel 3 pad same no_bias\n  batchnorm relu\n  residual relu shortcut project {\n    conv 6 kernel 3 stride 2 pad same no_bias\n    batchnorm relu\n    conv 6 kernel 3 pad same no_bias\n    batchnorm\n  }\n  global_avgpool\n  dense 3 softmax\n  loss cross_entropy",
        ];
        for (case, body) in specs.iter().enumerate() {
            for per_feature in [false, true] {
                let what = format!("case {case} (per feature: {per_feature})");
                let folded = check_folding(&what, body, per_feature, 20 + case as u64);
                // Only a per-feature normalization read by a convolution leaves a multiply.
                let multiplies = if per_feature && case != 2 { 1 } else { 0 };
                assert_eq!(count(&folded, "mul"), multiplies, "{what}");
            }
        }
    }

    /// Batch normalization that no product before it can take: after an activation, a
    /// concatenation, a sum, or the input, and as the output itself. It goes into the next
    /// product, or becomes a multiply and an add.
    #[test]
    fn batchnorm_elsewhere_is_a_per_channel_affine() {
        let specs = [
            // After a concatenation, then max pooling (a negative scale does not commute).
            "input 1 6 6\n  conv a: 3 relu kernel 3 pad same\n  conv 2 tanh kernel 1\n  concat a\n  batchnorm\n  maxpool 3 stride 2 pad same\n  dense 4 relu\n  batchnorm\n  dense 2 softmax\n  loss cross_entropy",
            // Into the next convolution (through padding) and into a dense layer.
            "input 2 5 5\n  conv 3 relu kernel 3 pad same\n  batchnorm\n  conv 4 relu kernel 3 pad 1\n  batchnorm\n  flatten\n  dense 3 softmax\n  loss cross_entropy",
            // Read twice: by the next layer and by a sum.
            "input 2 5 5\n  conv c1: 2 kernel 3 pad same\n  batchnorm b1:\n  conv 2 kernel 3 pad same\n  add b1 relu\n  avgpool 2 stride 1\n  dense 2 softmax\n  loss cross_entropy",
            // On the input, and as the output.
            "input 2 4 4\n  batchnorm\n  conv 3 kernel 3\n  batchnorm\n  global_avgpool\n  loss mse",
            "input 6\n  batchnorm sigmoid\n  dense 4 relu\n  batchnorm\n  loss mse",
        ];
        for (case, body) in specs.iter().enumerate() {
            for per_feature in [false, true] {
                check_folding(
                    &format!("case {case} (per feature: {per_feature})"),
                    body,
                    per_feature,
                    40 + case as u64,
                );
            }
        }
    }

    /// Dropout and the input normalization before convolutions, pooling, concatenation and
    /// sums: padded and strided windows, prelu's per-channel slopes, both dropout modes.
    #[test]
    fn dropout_and_normalization_fold_through_image_layers() {
        let specs = [
            "input 2 5 5\n  dropout 0.3 scale_at_test\n  conv 3 prelu(0.2) kernel 5 pad 2\n  avgpool 3 stride 1 pad 1\n  flatten\n  dense 2 softmax\n  loss cross_entropy",
            "input 1 6 6\n  maxpool 2\n  dropout 0.5 scale_at_test\n  conv 3 kernel 3 pad same\n  dropout 0.2 scale_at_test\n  maxpool 2 pad same\n  dense 3 linear\n  loss mse",
            "input 3 4 4\n  conv a: 2 relu kernel 1\n  dropout 0.4 scale_at_test\n  concat a\n  global_avgpool\n  dense 2 softmax\n  loss cross_entropy",
            "input 2 6 6\n  residual relu {\n    conv 2 kernel 3 pad same\n    dropout 0.3 scale_at_test\n    conv 2 elu(0.5) kernel 3 pad same\n  }\n  dropout 0.2\n  conv 3 kernel 2 stride 2\n  dense 2 softmax\n  loss cross_entropy",
        ];
        for (case, body) in specs.iter().enumerate() {
            for per_feature in [false, true] {
                check_folding(
                    &format!("case {case} (per feature: {per_feature})"),
                    body,
                    per_feature,
                    60 + case as u64,
                );
            }
        }
    }

    /// Without normalization or scale-at-test dropout, the parameters are kept bit for bit.
    #[test]
    fn nothing_to_fold_keeps_the_parameters() {
        let graph = training_graph("input 3\n  dense 4 relu\n  dropout 0.5\n  dense 2 softmax\n  loss cross_entropy");
        let params: Vec<Array2<f32>> = graph
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| Array2::from_elem((p.rows, p.cols), i as f32 + 0.5))
            .collect();
        let folded = inference(&graph, &params, &[0.0; 3], &[1.0; 3]);
        assert_eq!(folded.params, params);
        assert_eq!(folded.graph.params, graph.params);
    }
}

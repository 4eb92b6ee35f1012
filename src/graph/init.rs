//! Initial parameter values: a pure function of (seed, parameter index, element), so every
//! backend starts from the same weights and a resumed run can recompute nothing it saved.

use super::{Graph, ParamInit};
use crate::ops::{Float, cast};
use crate::rng::{Rng, streams};
use ndarray::Array2;

/// The initial value of every parameter of `graph` for `seed`, in `graph.params` order.
pub fn initial_params<F: Float>(graph: &Graph, seed: u64) -> Vec<Array2<F>> {
    graph
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut r = Rng::new(seed, streams::INIT + i as u64);
            Array2::from_shape_fn((p.rows, p.cols), |_| {
                cast(match p.init {
                    ParamInit::Normal(std) => r.normal() * std,
                    ParamInit::Uniform(limit) => (2.0 * r.uniform() - 1.0) * limit,
                    ParamInit::Constant(v) => v,
                })
            })
        })
        .collect()
}

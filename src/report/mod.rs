//! Reports: evaluation figures and plots.

pub mod metrics;
pub mod plot;

//! Reports: evaluation figures, per-epoch training records, and plots.

pub mod history;
pub mod metrics;
pub mod plot;

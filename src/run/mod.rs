//! The commands' library side: training, evaluation, prediction, sweeps, benchmarks, diagnosis,
//! `netc build`, and the files a run leaves behind.

pub mod bench;
pub mod build;
pub mod diagnose;
pub mod sweep;
pub mod train;
pub mod weights;

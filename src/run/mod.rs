//! The commands' library side: training, evaluation, prediction, sweeps, benchmarks, diagnosis,
//! and the files a run leaves behind.

pub mod bench;
pub mod diagnose;
pub mod sweep;
pub mod train;
pub mod weights;

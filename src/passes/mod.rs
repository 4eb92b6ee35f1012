//! Passes over the graph: [`fuse`] groups its ops into kernels.

pub mod fuse;

//! Passes over the graph: [`fuse`] groups its ops into kernels; [`inference`] turns a trained
//! graph into the forward-only graph `netc build` compiles.

pub mod fuse;
pub mod inference;

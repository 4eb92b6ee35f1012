//! The front end: spec text to a [`crate::ir::Program`].
//!
//! [`syntax`] parses text to a tree with byte spans, [`schema`] states every statement of the
//! language as data, [`lower`] turns the tree into the typed program, and [`fmt`] prints the
//! canonical layout. Pure: no IO, no panics on any input.

pub mod fmt;
pub mod lower;
pub mod schema;
pub mod syntax;

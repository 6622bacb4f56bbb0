//! govit-draw/v1 and the transparency log, with no I/O: the registry uses this crate to draw,
//! the `govit verify` tools use it to check, and neither can drift from the other.

#![forbid(unsafe_code)]

pub mod draw;
pub mod jcs;
pub mod merkle;
pub mod note;
pub mod tiles;

pub use draw::{DrawInput, DrawRecord, Exclusion, Outcome, Requirement, Selection, Status};

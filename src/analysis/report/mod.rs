//! Renderings of an [`crate::analysis::Analysis`] for people.

pub mod html;
pub mod svg;

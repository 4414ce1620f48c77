//! Renderings of an [`crate::analyze::Analysis`] for people.

pub mod html;
pub mod svg;

//! The sans-IO link engine against SPEC.md, without tokio: two engines on a perfect wire, or
//! one engine facing scripted frames.

mod backlog;
mod channel_rules;
mod harness;
mod link_rules;
mod session_rules;
mod split_frames;

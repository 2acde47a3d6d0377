//! One module per command.

pub mod case_logs;
pub mod chat;
pub mod conformance;
pub mod devices;
pub mod keys;
pub mod listen;
pub mod mock;
pub mod peer;
pub mod progress;
pub mod proxy;
pub mod reach;
pub mod robustness;
pub mod send;

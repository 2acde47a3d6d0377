//! `acm`: cross-device ability connections.
//!
//! This crate is the home of the acm session engine ([`engine`]: a sans-IO state machine per
//! link that runs link setup, sessions, handshakes, keepalive, messages, data and close) and of
//! the async `AbilityConnectionManager` API over any [`transport::Transport`]. The protocol it
//! speaks is defined in SPEC.md; the wire format lives in [`wire`] and the link abstraction in
//! [`transport`], both re-exported here so that applications depend on one crate.
//!
//! # Example
//!
//! The codes the API reports are the wire's, mapped to the reference API's numbers:
//!
//! ```
//! use acm::wire::pb::ConnectErrorCode;
//! use acm::wire::reference::ApiEnum;
//!
//! assert_eq!(ConnectErrorCode::ConnectedSessionExists.api_value(), Some(0));
//! assert_eq!(ConnectErrorCode::SystemInternalError.api_value(), Some(5));
//! ```

pub mod api;
pub mod engine;
mod runtime;

pub use api::*;
pub use runtime::{Device, DeviceConfig};

pub use acm_transport as transport;
pub use acm_wire as wire;

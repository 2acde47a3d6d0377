//! The sans-IO protocol engine: one [`LinkEngine`] per link runs link setup, version
//! negotiation, the sessions multiplexed over the link, their handshakes, keepalive, messages,
//! data transfers and close, as SPEC.md says. It owns no socket, task or clock: it is driven by
//! the async runtime in this crate, by tests, and by fuzzers alike.
//!
//! ```
//! use std::time::Instant;
//! use acm::engine::{EngineConfig, EngineEvent, LinkEngine};
//! use acm::transport::Role;
//!
//! let now = Instant::now();
//! let config = EngineConfig::default();
//! let mut a = LinkEngine::new(now, Role::Dialer, "phone", None, 65_535, [1; 16], config);
//! let mut b = LinkEngine::new(now, Role::Acceptor, "tablet", None, 65_535, [2; 16], config);
//! // Each side queued its HELLO; hand them across.
//! while let Some(frame) = a.poll_transmit(now) { b.handle_message(now, frame); }
//! while let Some(frame) = b.poll_transmit(now) { a.handle_message(now, frame); }
//! assert!(matches!(a.poll_event(), Some(EngineEvent::LinkUp { version: 1, .. })));
//! assert!(matches!(b.poll_event(), Some(EngineEvent::LinkUp { version: 1, .. })));
//! ```

/// Whether a deliberate defect is on: `false` (and compiled away) without feature `mutants`.
macro_rules! mutated {
    ($engine:expr, $mutation:ident) => {{
        #[cfg(feature = "mutants")]
        {
            $engine.config.mutated($crate::engine::Mutation::$mutation)
        }
        #[cfg(not(feature = "mutants"))]
        {
            false
        }
    }};
}

mod channel;
mod config;
mod event;
mod inbound;
mod link;
#[cfg(feature = "mutants")]
mod mutation;
pub(crate) mod names;
mod outbound;

pub use config::EngineConfig;
pub use event::{Closer, ConnectOutcome, EngineError, EngineEvent, IncomingRequest, Token};
#[cfg(feature = "fuzzing")]
pub(crate) use link::truncate;
pub use link::{LinkEngine, OutgoingRequest};
#[cfg(feature = "mutants")]
pub use mutation::Mutation;

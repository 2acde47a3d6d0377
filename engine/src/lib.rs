//! The sans-IO protocol engine: one [`LinkEngine`] per link runs link setup, version
//! negotiation, the sessions multiplexed over the link, their handshakes, keepalive, messages,
//! data transfers and close, as SPEC.md says. It owns no socket, task or clock: it is driven by
//! the async runtime of the `acm` crate, by tests, and by fuzzers alike.
//!
//! ```
//! use std::time::Instant;
//! use acm_engine::{EngineConfig, EngineEvent, LinkEngine};
//! use acm_transport::Role;
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

mod channel;
mod config;
pub mod device;
mod event;
mod inbound;
mod link;
#[doc(hidden)]
pub mod names;
mod outbound;

pub use config::EngineConfig;
pub use event::{Closer, ConnectOutcome, EngineError, EngineEvent, IncomingRequest, Token};
pub use inbound::PROGRESS_STEP;
#[doc(hidden)]
pub use link::truncate;
pub use link::{LinkEngine, OutgoingRequest};

/// The hash map of the crate: SipHash, the standard one, costs more per connect than anything
/// else on the path but allocation. foldhash's quality hasher is seeded at random per process,
/// so keys a peer chooses (channel numbers, tokens) still cannot be picked to collide.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;

/// The hash set of the crate (see [`HashMap`]).
pub(crate) type HashSet<T> = std::collections::HashSet<T, foldhash::quality::RandomState>;

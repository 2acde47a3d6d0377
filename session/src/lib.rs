//! `acm`: cross-device ability connections.
//!
//! An app on one device opens its twin on a nearby device, hands it a request, and then
//! exchanges text messages and bytes with it: the job of OpenHarmony's
//! `abilityConnectionManager`, with the same functions, types and error codes, over the
//! documented acm protocol (SPEC.md) and any transport that implements
//! `acm::transport::Transport`: TCP (`acm-transport-tcp`), Bluetooth LE (`acm-transport-ble`),
//! or the in-memory network of `acm-transport-mock` for tests.
//!
//! * [`Device`]: the runtime of one device (OpenHarmony's system service). It owns the
//!   transport and one link per peer device, and routes incoming requests to the apps.
//!   [`Device::close`] ends it gracefully: await it before the program exits, or the last
//!   frames the apps sent may be lost with the process.
//! * [`AbilityConnectionManager`]: what an app uses: `create_ability_connection_session`,
//!   `connect`, `accept_connect`, `reject`, `disconnect`, `send_message`, `send_data`, the events
//!   `connect`, `disconnect`, `receiveMessage`, `receiveData` and `collaborateEvent` through
//!   [`AbilityConnectionManager::on`]/[`AbilityConnectionManager::off`] or as a stream.
//!   Failed calls return an [`AcmError`] to match on, with the reference's error code.
//!   The same functions in Rust's shape: a [`Session`] the app owns, whose `connect` is a
//!   `Result` and whose drop destroys it, and requests as [`IncomingRequest`] values to accept
//!   or reject from anywhere; the [`api`] module's table maps each reference function to both.
//! * `acm::engine`: the sans-IO protocol engine underneath (the crate `acm-engine`), for
//!   testing and fuzzing.
//! * `acm::bytes`: the crate of the `Bytes` that `send_data` takes and [`Event::Data`]
//!   carries, re-exported.
//!
//! # A first program
//!
//! Two devices on an in-memory network. The tablet's app accepts every request; the phone's
//! app connects, sends a message, and the tablet sees it. It needs `acm`,
//! `acm-transport-mock` and `tokio` (features `macros` and `rt`).
//!
//! ```
//! use acm::transport::DeviceId;
//! use acm::{CollaborateResult, ConnectOptions, Context, Device, DeviceConfig, Event, PeerInfo};
//! use acm_transport_mock::MockNetwork;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let network = MockNetwork::new(1);
//!     let phone = Device::new(network.add_device(DeviceId::new("phone")?)?, DeviceConfig::default());
//!     let tablet = Device::new(network.add_device(DeviceId::new("tablet")?)?, DeviceConfig::default());
//!
//!     let context = Context::new("com.example.notes", "entry", "EntryAbility");
//!     let on_phone = phone.manager(&context);
//!     let on_tablet = tablet.manager(&context);
//!
//!     // The tablet's ability accepts every collaboration request in its handler, as the
//!     // reference's onCollaborate example does. It listens to the session before it accepts,
//!     // so that it sees the session's first event, `connect`. accept_connect starts at once,
//!     // and its future only tells how it ended.
//!     let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
//!     let manager = on_tablet.clone();
//!     let ctx = context.clone();
//!     on_tablet.register_ability("entry", "EntryAbility", move |request| {
//!         let peer = request.peer_info;
//!         let service = peer.service_name.clone();
//!         let id = manager
//!             .create_ability_connection_session(&service, &ctx, peer, request.connect_options)
//!             .unwrap();
//!         let events = manager.events(id).unwrap();
//!         let outcome = manager.accept_connect(id, &request.token);
//!         accepted_tx.send((id, events, outcome)).unwrap();
//!         CollaborateResult::Accept
//!     });
//!
//!     // The phone's app connects and sends a message.
//!     let peer = PeerInfo::new("tablet", "com.example.notes", "entry", "EntryAbility");
//!     let session =
//!         on_phone.create_ability_connection_session("notes", &context, peer, ConnectOptions::default())?;
//!     assert!(on_phone.connect(session).await?.is_connected);
//!     on_phone.send_message(session, "hello").await?;
//!
//!     let (on_tablet_session, mut events, outcome) = accepted.recv().await.unwrap();
//!     outcome.await?;
//!     assert_eq!(events.next().await, Some(Event::Connect { session_id: on_tablet_session }));
//!     assert_eq!(
//!         events.next().await,
//!         Some(Event::Message { session_id: on_tablet_session, msg: "hello".into() })
//!     );
//!
//!     // Before the program ends: what the devices sent goes out, and the links close.
//!     phone.close().await;
//!     tablet.close().await;
//!     Ok(())
//! }
//! ```
//!
//! # Testing your app against the mock transport
//!
//! The same program makes a test: `#[tokio::test(start_paused = true)]` in place of
//! `#[tokio::main]` runs it on tokio's paused clock, on which timeouts (a handshake's 10 s, a
//! keepalive's 45 s) take no time. The paused clock needs tokio's `test-util` feature, which is
//! not on by default; without it the attribute fails with `no method named start_paused`:
//!
//! ```toml
//! [dev-dependencies]
//! tokio = { version = "1", features = ["macros", "rt", "test-util"] }
//! ```
//!
//! Faults come from the mock network: `network.links(&a, &b)[0].inject(&a, Fault::Stall)`,
//! `.lose("gone")`, and the others of `acm_transport_mock::Fault`.

pub mod api;
mod error;
mod events;
mod runtime;
pub mod security;
pub mod segmented;
mod types;

pub use api::*;
pub use runtime::{DEFAULT_MEMORY_BUDGET, DEFAULT_STREAM_DATA_BYTES, Device, DeviceConfig};

pub use acm_engine as engine;
pub use acm_secure as secure;
pub use acm_transport as transport;
pub use acm_wire as wire;
pub use bytes;
pub use security::Security;

/// README.md's Rust, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// The hash map of the crate: SipHash, the standard one, costs more per connect than anything
/// else on the path but allocation. foldhash's quality hasher is seeded at random per process,
/// so keys a peer chooses (channel numbers, tokens) still cannot be picked to collide.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;

/// Locks `mutex`, whether or not a thread panicked while holding it: what the crate keeps under
/// a lock is left consistent at every step.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! `acm`: cross-device ability connections.
//!
//! An app on one device opens its twin on a nearby device, hands it a request, and then
//! exchanges text messages and bytes with it: the job of OpenHarmony's
//! `abilityConnectionManager`, with the same functions, types and error codes, over the
//! documented acm protocol (SPEC.md) and any [`transport::Transport`].
//!
//! * [`Device`]: the runtime of one device (OpenHarmony's system service). It owns the
//!   transport and one link per peer device, and routes incoming requests to the apps.
//! * [`AbilityConnectionManager`]: what an app uses: `create_ability_connection_session`,
//!   `connect`, `accept_connect`, `reject`, `disconnect`, `send_message`, `send_data`, the events
//!   `connect`, `disconnect`, `receiveMessage`, `receiveData` and `collaborateEvent` through
//!   [`AbilityConnectionManager::on`]/[`AbilityConnectionManager::off`] or as a stream.
//! * [`engine`]: the sans-IO protocol engine underneath, for testing and fuzzing.
//!
//! # Testing your app against the mock transport
//!
//! Two devices on an in-memory network, under tokio's paused clock so that timeouts take no
//! time. Device B's app accepts every request; device A's app connects, sends a message, and
//! B sees it.
//!
//! ```
//! use acm::{CollaborateResult, ConnectOptions, Context, Device, DeviceConfig, Event, PeerInfo};
//! use acm::transport::DeviceId;
//! use acm_transport_mock::MockNetwork;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In a test: #[tokio::test(start_paused = true)]
//! let network = MockNetwork::new(1);
//! let phone = Device::new(network.add_device(DeviceId::new("phone")?)?, DeviceConfig::default());
//! let tablet = Device::new(network.add_device(DeviceId::new("tablet")?)?, DeviceConfig::default());
//!
//! let context = Context::new("com.example.notes", "entry", "EntryAbility");
//! let on_phone = phone.manager(&context);
//! let on_tablet = tablet.manager(&context);
//!
//! // The tablet's ability accepts every collaboration request in its handler, as the
//! // reference's onCollaborate example does: accept_connect starts at once, and its future
//! // only tells how it ended.
//! let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
//! let manager = on_tablet.clone();
//! let ctx = context.clone();
//! on_tablet.register_ability("entry", "EntryAbility", move |request| {
//!     let peer = request.peer_info;
//!     let service = peer.service_name.clone();
//!     let id = manager
//!         .create_ability_connection_session(&service, &ctx, peer, request.connect_options)
//!         .unwrap();
//!     let outcome = manager.accept_connect(id, &request.token);
//!     accepted_tx.send((id, outcome)).unwrap();
//!     CollaborateResult::Accept
//! });
//!
//! // The phone's app connects and sends a message.
//! let peer = PeerInfo::new("tablet", "com.example.notes", "entry", "EntryAbility");
//! let session = on_phone.create_ability_connection_session("notes", &context, peer, ConnectOptions::default())?;
//! assert!(on_phone.connect(session).await?.is_connected);
//! let (on_tablet_session, outcome) = accepted.recv().await.unwrap();
//! outcome.await?;
//! let mut events = on_tablet.events(on_tablet_session)?;
//! on_phone.send_message(session, "hello").await?;
//! assert_eq!(
//!     events.next().await,
//!     Some(Event::Message { session_id: on_tablet_session, msg: "hello".into() })
//! );
//! # Ok(())
//! # }
//! ```
//!
//! Faults come from the mock network: `network.links(&a, &b)[0].inject(&a, Fault::Stall)`,
//! `.lose("gone")`, and the others of `acm_transport_mock::Fault` (a dev-dependency).

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
pub use security::Security;

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

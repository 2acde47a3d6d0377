//! An in-memory network of devices for testing code written against
//! [`acm_transport`]'s [`Transport`](acm_transport::Transport) and
//! [`Link`](acm_transport::Link), with faults injected on demand.
//!
//! A [`MockNetwork`] holds devices; each one gets a [`MockTransport`] that discovers the
//! others, dials them and accepts their links. A link ([`MockLink`]) keeps the contract of
//! `acm_transport` (frames arrive whole, once and in order; `send` waits while the link's
//! buffer is full; a graceful close is seen after the frames sent before it) until a test
//! breaks it: a [`LinkHandle`], from [`MockNetwork::links`] or [`MockNetwork::link_events`],
//! injects a [`Fault`] into one direction of the link (drop, truncate or corrupt frames or
//! bytes, stall it, add latency, cap its bandwidth, shrink its largest frame), closes the link,
//! or breaks it, and counts what went through ([`DirectionStats`]).
//!
//! Everything that needs chance comes from the network's seed, through a generator of its own
//! for each direction of each link, so the same seed and the same operations give the same
//! bytes. Time comes from `tokio::time`, so latency and bandwidth can be measured exactly
//! under a paused clock (`#[tokio::test(start_paused = true)]`).
//!
//! # Example
//!
//! ```
//! use acm_transport::{CloseReason, Closure, DeviceId, Transport, TransportError};
//! use acm_transport_mock::{Fault, MockNetwork};
//! use bytes::Bytes;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = MockNetwork::new(42);
//! let phone_id = DeviceId::new("phone")?;
//! let tablet_id = DeviceId::new("tablet")?;
//! let phone = network.add_device(phone_id.clone())?;
//! let tablet = network.add_device(tablet_id.clone())?;
//!
//! // The phone sees the tablet and dials it; the tablet accepts.
//! let seen = phone.discover().await?;
//! assert_eq!(seen[0].address, "mock://tablet");
//! let to_tablet = phone.dial(&tablet_id).await?;
//! let to_phone = tablet.accept().await?;
//!
//! // One frame each way.
//! to_tablet.send(Bytes::from_static(b"hello")).await?;
//! assert_eq!(to_phone.recv().await?, "hello");
//! to_phone.send(Bytes::from_static(b"hi")).await?;
//! assert_eq!(to_tablet.recv().await?, "hi");
//!
//! // Corrupt the next frame from the phone: one of its bytes changes.
//! let link = &network.links(&phone_id, &tablet_id)[0];
//! link.inject(&phone_id, Fault::CorruptFrames(1))?;
//! to_tablet.send(Bytes::from_static(b"ping")).await?;
//! let got = to_phone.recv().await?;
//! assert_eq!(got.len(), 4);
//! assert_eq!(got.iter().zip(b"ping").filter(|(a, b)| a != b).count(), 1);
//!
//! // The phone closes; the tablet sees why.
//! to_tablet.close(CloseReason::new(7, "done")).await;
//! match to_phone.recv().await {
//!     Err(TransportError::Closed(Closure::Peer(reason))) => assert_eq!(reason.code, 7),
//!     other => panic!("expected a close, got {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

mod device;
mod direction;
mod error;
mod fault;
mod handle;
mod link;
mod network;
mod rng;
mod transport;

pub use device::DeviceOptions;
pub use direction::DirectionStats;
pub use error::MockError;
pub use fault::Fault;
pub use handle::LinkHandle;
pub use link::MockLink;
pub use network::{LinkEvents, MockNetwork};
pub use transport::MockTransport;

//! acm links over TCP, so that an implementation on another machine, or written in another
//! language, can be reached and tested over IP.
//!
//! [`TcpTransport`] implements `acm_transport::Transport`. A link is one TCP connection on
//! which acm frames follow each other with nothing between them, each delimited by the payload
//! length of its 12-byte header (SPEC.md section 3.6). The binding adds two messages of its own
//! in the same layout with the version byte 0, as the Bluetooth LE binding does: OPEN, which
//! tells each side the other's device id, and CLOSE, which carries the reason of a graceful
//! close. The rules (`TCP-1` to `TCP-9`) are in SPEC.md section 14, "TCP binding"; the message
//! layouts are in [`binding`].
//!
//! Frames handed to `Link::send` must therefore be acm frames at
//! least in shape: a 12-byte header whose payload length gives the bytes after it. Other bytes
//! are refused with [`TransportError::Unsupported`](acm_transport::TransportError::Unsupported),
//! as is a frame beginning `AC 4D 00`.
//!
//! # Example
//!
//! ```
//! use acm_transport::{CloseReason, Closure, DeviceId, Link, Transport, TransportError};
//! use acm_transport_tcp::TcpTransport;
//! use bytes::Bytes;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The tablet listens on a free port of the loopback interface; the phone only dials.
//! let tablet_id = DeviceId::new("tablet")?;
//! let tablet = TcpTransport::bind(tablet_id.clone(), "127.0.0.1:0".parse()?).await?;
//! let phone = TcpTransport::client(DeviceId::new("phone")?);
//! phone.add_peer(tablet_id.clone(), tablet.local_addr().unwrap());
//!
//! // The phone dials the tablet by id; each learns the other's id from its OPEN.
//! let to_tablet = phone.dial(&tablet_id).await?;
//! let to_phone = tablet.accept().await?;
//! assert_eq!(to_phone.peer_device().as_str(), "phone");
//!
//! // A frame: the header (magic, version 1, type, flags, 24-bit length, channel), then 2 bytes.
//! let frame = Bytes::from_static(b"\xAC\x4D\x01\x07\x00\x00\x00\x02\x00\x00\x00\x01hi");
//! to_tablet.send(frame.clone()).await?;
//! assert_eq!(to_phone.recv().await?, frame);
//!
//! // The phone closes; the tablet gets the reason after every frame sent before it.
//! to_tablet.close(CloseReason::new(7, "done")).await;
//! match to_phone.recv().await {
//!     Err(TransportError::Closed(Closure::Peer(reason))) => assert_eq!(reason.message, "done"),
//!     other => panic!("expected the phone's close, got {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

pub mod binding;

mod config;
mod error;
mod link;
mod opening;
mod receive;
mod stream;
mod transport;
mod waste;

pub use config::TcpConfig;
pub use error::TcpError;
pub use link::TcpLink;
pub use transport::TcpTransport;

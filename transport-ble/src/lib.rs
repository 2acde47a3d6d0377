//! acm links over Bluetooth LE L2CAP connection-oriented channels.
//!
//! [`BleTransport`] implements [`acm_transport::Transport`]: an acceptor advertises the acm
//! service, a dialer scans, connects and opens an L2CAP LE credit-based channel on the acm
//! SPSM, and each acm frame then travels as one SDU. Links between the same two devices are
//! channels on their one LE connection, which goes down with the last of them. The binding (UUID, SPSM, advertising
//! layout, MTU and MPS, the OPEN and CLOSE SDUs) is in [`binding`] and in SPEC.md section 13,
//! "Bluetooth LE binding" (rules `BLE-1` to `BLE-16`; section 13.5, what a connection asks
//! for to be fast, is in `host/tend.rs`, its goodput model in [`air`]).
//!
//! The Bluetooth host is the pure-Rust trouble-host stack, on a thread of its own, talking HCI
//! H4 to a controller over TCP (a virtual controller) or a serial port (a real one): see
//! [`HciEndpoint`]. With the cargo feature `bluez`, `bluez::BluezTransport` runs the same
//! binding on Linux's own Bluetooth stack (BlueZ) instead; its module docs say how to run it on
//! hardware.
//!
//! # Example
//!
//! ```no_run
//! use acm_transport::{CloseReason, DeviceId, Transport};
//! use acm_transport_ble::{BleConfig, BleTransport, HciEndpoint};
//! use bytes::Bytes;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Two devices, each on its own controller (here Rootcanal's HCI port on loopback).
//! let hci = HciEndpoint::Tcp("127.0.0.1:6402".parse()?);
//! let tablet = BleTransport::start(BleConfig::new(DeviceId::new("tablet")?, hci.clone())).await?;
//! let phone = BleTransport::start(BleConfig::new(DeviceId::new("phone")?, hci)).await?;
//!
//! // The phone finds the tablet and dials it; the tablet accepts.
//! let seen = phone.discover().await?;
//! assert!(seen.iter().any(|device| device.id.as_str() == "tablet"));
//! let to_tablet = phone.dial(&DeviceId::new("tablet")?).await?;
//! let to_phone = tablet.accept().await?;
//!
//! to_tablet.send(Bytes::from_static(b"hello")).await?;
//! assert_eq!(to_phone.recv().await?, "hello");
//! to_tablet.close(CloseReason::new(7, "done")).await;
//! # Ok(())
//! # }
//! ```

pub mod air;
pub mod binding;
#[cfg(feature = "bluez")]
pub mod bluez;

mod advert;
mod carry;
mod config;
mod error;
mod host;
mod link;
mod pool;
mod snoop;
mod transport;

pub use config::{BleConfig, HciEndpoint};
pub use error::BleError;
pub use link::BleLink;
pub use transport::{BleTransport, MAX_FRAME_SIZE};

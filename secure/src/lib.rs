//! acm's secure layer (SPEC section 17): device identities, a trust store, pairing by
//! numeric comparison, and links whose every frame is encrypted and authenticated.
//!
//! After a binding's opening and before acm's HELLO, the two ends of a link run the Noise
//! handshake `Noise_XX_25519_ChaChaPoly_SHA256`: each proves that it holds the long-term key of
//! its [`Identity`], and both derive a 6-digit [`PairingCode`]. A device whose [`TrustStore`]
//! has no key for the peer's id pairs as its [`PairingPolicy`] says: it asks its owner (who
//! compares the code with the one on the peer's screen), trusts on first use, or refuses. A
//! known id with another key is refused as an impersonation. From then on each acm frame
//! travels as one record: a Noise transport message, which nobody on the way can read or
//! change unnoticed.
//!
//! [`Secure`] wraps any [`acm_transport::Transport`] so that all its links are secure;
//! [`establish`] secures one link.
//!
//! # Example
//!
//! Two devices on the in-memory mock network pair, the owner of each confirming the code:
//!
//! ```
//! use acm_secure::{Identity, PairingPolicy, Secure, SecureConfig};
//! use acm_transport::{DeviceId, Link, Transport};
//! use acm_transport_mock::MockNetwork;
//! use bytes::Bytes;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = MockNetwork::new(1);
//! let (phone, tablet) = (DeviceId::new("phone")?, DeviceId::new("tablet")?);
//! let phone_config = SecureConfig::new(Identity::generate()?);
//! let tablet_config = SecureConfig::new(Identity::generate()?);
//! let (mut phone_asks, mut tablet_asks) = (
//!     phone_config.pairing_requests().unwrap(),
//!     tablet_config.pairing_requests().unwrap(),
//! );
//! let phone_side = Secure::new(network.add_device(phone.clone())?, phone_config.clone());
//! let tablet_side = Secure::new(network.add_device(tablet.clone())?, tablet_config);
//!
//! // Each owner sees a request with the same code, and accepts it.
//! let owners = async {
//!     let (a, b) = (phone_asks.next().await.unwrap(), tablet_asks.next().await.unwrap());
//!     assert_eq!(a.code(), b.code());
//!     assert_eq!(a.peer(), &tablet);
//!     a.accept();
//!     b.accept();
//! };
//! let (dialed, accepted, ()) = tokio::join!(tablet_side.dial(&phone), phone_side.accept(), owners);
//! let (dialed, accepted) = (dialed?, accepted?);
//! dialed.send(Bytes::from_static(b"\xAC\x4D\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00")).await?;
//! assert_eq!(&accepted.recv().await?[..4], b"\xAC\x4D\x01\x01");
//! // The phone now trusts the tablet's key.
//! assert!(phone_config.trust_store().get(&tablet).is_some());
//! assert_eq!(phone_config.policy(), PairingPolicy::Confirm);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod envelope;
mod error;
mod establish;
mod files;
pub mod handshake;
mod identity;
pub mod keylog;
mod link;
mod pairing;
pub mod record;
mod transport;
mod trust;
pub mod vectors;

pub use config::{HANDSHAKE_TIMEOUT, PAIRING_TIMEOUT, SecureConfig};
pub use error::{CloseCode, SecureError};
pub use establish::{establish, link_prologue};
pub use identity::{Fingerprint, Identity, KEY_LEN, PublicKey};
pub use link::SecureLink;
pub use pairing::{PairingCode, PairingPolicy, PairingRequest, PairingRequests};
pub use transport::{OPENING_LINKS, OPENING_LINKS_PER_ADDRESS, Secure};
pub use trust::{FileTrustStore, MemoryTrustStore, TrustStore};

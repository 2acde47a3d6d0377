//! Whether a device's links run the secure layer (SPEC section 17), and with what identity,
//! trust store and pairing policy. Secure is the default; plain links are an explicit opt-out.
//!
//! | [`Security`] | identity | trust store | an unknown peer |
//! |---|---|---|---|
//! | [`Security::Ephemeral`] (default) | new and random for each [`Device`](crate::Device) | in memory | trusted on first use |
//! | [`Security::Configured`] | yours | yours | as its [`PairingPolicy`](crate::secure::PairingPolicy) says |
//! | [`Security::Insecure`] | none | none | every link is plain |
//!
//! The default encrypts every link and pins each peer's key for the device's life, with no
//! dialog: what tests, examples and a first program need. It cannot notice a man in the middle
//! of a first contact, and a device that restarts has a new key, which its peers that still run
//! refuse as an impersonation. A product keeps its identity and trust store across runs and asks
//! its user to compare pairing codes: [`Security::Configured`] with a
//! [`SecureConfig`], whose pairing requests [`Device::pairing_requests`](crate::Device::pairing_requests)
//! hands out.
//!
//! ```
//! use acm::secure::{Identity, SecureConfig};
//! use acm::{Device, DeviceConfig, Security};
//! use acm::transport::DeviceId;
//! use acm_transport_mock::MockNetwork;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = MockNetwork::new(1);
//! let secure = SecureConfig::new(Identity::generate()?);
//! let config = DeviceConfig::default().with_security(Security::Configured(secure));
//! let device = Device::new(network.add_device(DeviceId::new("phone")?)?, config);
//! // Requests to pair with unknown devices arrive here, each with the code to compare.
//! let requests = device.pairing_requests();
//! assert!(requests.is_some());
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use acm_secure::{PairingRequests, Secure, SecureConfig, SecureError};
use acm_transport::{Capabilities, DeviceId, DeviceInfo, Link, Transport, TransportError};
use async_trait::async_trait;

/// Whether and how a device secures its links. See the [module docs](self).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Security {
    /// Secure links with a random identity made when the device starts, an in-memory trust
    /// store, and trust on first use. The default.
    #[default]
    Ephemeral,
    /// Secure links as the configuration says.
    Configured(SecureConfig),
    /// Plain links, which anyone on the way can read and change, and which a secure device
    /// refuses (`SEC-2`). Only for talking to implementations without the secure layer.
    Insecure,
}

impl Security {
    /// The secure layer's configuration, once [`Security::Ephemeral`] is made concrete.
    pub fn config(&self) -> Option<&SecureConfig> {
        match self {
            Self::Configured(config) => Some(config),
            _ => None,
        }
    }

    /// The pairing requests of a configured secure layer (see
    /// [`SecureConfig::pairing_requests`]).
    pub fn pairing_requests(&self) -> Option<PairingRequests> {
        self.config().and_then(SecureConfig::pairing_requests)
    }
}

/// Puts the secure layer over `transport` as `security` says; returns the transport the device
/// uses and `security` made concrete ([`Security::Ephemeral`] becomes the configuration made).
pub(crate) fn secure(
    transport: impl Transport + 'static,
    security: Security,
) -> (Arc<dyn Transport>, Security) {
    let config = match security {
        Security::Insecure => return (Arc::new(transport), Security::Insecure),
        Security::Configured(config) => config,
        Security::Ephemeral => match SecureConfig::ephemeral() {
            Ok(config) => config,
            Err(error) => {
                let unavailable = Unavailable {
                    inner: transport,
                    why: error.to_string(),
                };
                return (Arc::new(unavailable), Security::Ephemeral);
            }
        },
    };
    let secured = Secure::new(transport, config.clone());
    (Arc::new(secured), Security::Configured(config))
}

/// A transport whose secure layer could not start (no random numbers for a key): it makes no
/// links rather than plain ones.
struct Unavailable<T> {
    inner: T,
    why: String,
}

impl<T> Unavailable<T> {
    fn error(&self) -> TransportError {
        TransportError::from(SecureError::Random(self.why.clone()))
    }
}

#[async_trait]
impl<T: Transport> Transport for Unavailable<T> {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        self.inner.discover().await
    }

    async fn dial(&self, _: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        Err(self.error())
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        Err(self.error())
    }
}

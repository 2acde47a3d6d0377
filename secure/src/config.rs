//! [`SecureConfig`]: who a device is, whom it trusts, and how it pairs.

use std::sync::Arc;
use std::time::Duration;

use crate::SecureError;
use crate::identity::Identity;
use crate::pairing::{PairingPolicy, PairingQueue, PairingRequests};
use crate::trust::{MemoryTrustStore, TrustStore};

/// How long a side waits for each handshake message (`SEC-4`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a side waits, once the handshake is done, for both owners' answers: its own and
/// the peer's confirmation (`SEC-8`).
pub const PAIRING_TIMEOUT: Duration = Duration::from_secs(60);

/// The settings of a device's secure layer. Cloning shares the identity, the trust store and
/// the pairing requests.
#[derive(Debug, Clone)]
pub struct SecureConfig {
    pub(crate) identity: Arc<Identity>,
    pub(crate) trust: Arc<dyn TrustStore>,
    pub(crate) policy: PairingPolicy,
    pub(crate) pairing: Arc<PairingQueue>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) pairing_timeout: Duration,
}

impl SecureConfig {
    /// `identity`, an empty in-memory trust store, and [`PairingPolicy::Confirm`]: every new
    /// peer becomes a [`PairingRequest`](crate::PairingRequest) for
    /// [`SecureConfig::pairing_requests`].
    pub fn new(identity: Identity) -> Self {
        Self {
            identity: Arc::new(identity),
            trust: Arc::new(MemoryTrustStore::new()),
            policy: PairingPolicy::Confirm,
            pairing: Arc::new(PairingQueue::new()),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            pairing_timeout: PAIRING_TIMEOUT,
        }
    }

    /// A new random identity that lives as long as the configuration, an in-memory trust
    /// store, and [`PairingPolicy::TrustOnFirstUse`]: what a `Device` of acm gets by default.
    /// Its links are encrypted and each peer's key is pinned for the configuration's life, but
    /// no one compares codes, so a man in the middle of a first link goes unnoticed.
    pub fn ephemeral() -> Result<Self, SecureError> {
        Ok(Self::new(Identity::generate()?).with_policy(PairingPolicy::TrustOnFirstUse))
    }

    /// Uses `trust` as the trust store.
    #[must_use]
    pub fn with_trust_store(mut self, trust: Arc<dyn TrustStore>) -> Self {
        self.trust = trust;
        self
    }

    /// Sets what happens when a peer is not in the trust store.
    #[must_use]
    pub fn with_policy(mut self, policy: PairingPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets how long a side waits for each handshake message (default 10 s).
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets how long a side waits for both owners to answer a pairing (default 60 s).
    #[must_use]
    pub fn with_pairing_timeout(mut self, timeout: Duration) -> Self {
        self.pairing_timeout = timeout;
        self
    }

    /// This device's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The trust store.
    pub fn trust_store(&self) -> &Arc<dyn TrustStore> {
        &self.trust
    }

    /// The pairing policy.
    pub fn policy(&self) -> PairingPolicy {
        self.policy
    }

    /// The requests to pair that wait for the owner's answer, under
    /// [`PairingPolicy::Confirm`]: to the first caller only (`None` after). Until someone
    /// takes them, requests wait, and time out.
    pub fn pairing_requests(&self) -> Option<PairingRequests> {
        self.pairing.take()
    }
}

//! Pairing: how a device decides to trust a key it does not know (SPEC section 17.6).

use std::fmt;
use std::sync::Mutex;

use acm_transport::DeviceId;
use tokio::sync::{mpsc, oneshot};

use crate::identity::{Fingerprint, PublicKey};

/// What a device does when a peer presents an id it has no key for (`SEC-8`). A known id with
/// another key is refused whatever the policy (`SEC-7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PairingPolicy {
    /// Ask the device's owner through a [`PairingRequest`], showing the pairing code, which
    /// the owner compares with the one the peer shows. The right choice for people.
    #[default]
    Confirm,
    /// Trust the key of every new id at once (trust on first use). A man in the middle of the
    /// very first link goes unnoticed; later links are checked. For tests, demos and devices
    /// with no one to ask.
    TrustOnFirstUse,
    /// Refuse every id that is not in the trust store (kiosks, devices paired in advance).
    KnownOnly,
}

/// The 6-digit code both sides of a new link show to their owners (`SEC-6`): equal codes mean
/// that no one stands between the two devices, but for a chance of one in a million.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PairingCode(u32);

impl PairingCode {
    /// How many codes there are: codes run from 000000 to 999999.
    pub const COUNT: u32 = 1_000_000;

    /// The code `value`, if it is below [`PairingCode::COUNT`].
    pub fn new(value: u32) -> Option<Self> {
        (value < Self::COUNT).then_some(Self(value))
    }

    /// The code of a 64-bit number: the number modulo [`PairingCode::COUNT`].
    pub(crate) fn reduce(value: u64) -> Self {
        Self(u32::try_from(value % u64::from(Self::COUNT)).unwrap_or(0))
    }

    /// The code as a number.
    pub fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingCode({self})")
    }
}

/// A peer this device has no key for, waiting for its owner's answer. Show the peer, its
/// fingerprint and the code; accept only when the peer's owner sees the same code.
///
/// Dropping a request without answering it refuses the pairing.
#[derive(Debug)]
pub struct PairingRequest {
    peer: DeviceId,
    key: PublicKey,
    code: PairingCode,
    answer: oneshot::Sender<bool>,
}

impl PairingRequest {
    /// The device id the peer claims.
    pub fn peer(&self) -> &DeviceId {
        &self.peer
    }

    /// The peer's public key.
    pub fn key(&self) -> PublicKey {
        self.key
    }

    /// The peer's key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.key.fingerprint()
    }

    /// The code to compare with the one the peer shows.
    pub fn code(&self) -> PairingCode {
        self.code
    }

    /// Trusts the peer's key for its id, once the peer's owner confirms too.
    pub fn accept(self) {
        let _ = self.answer.send(true);
    }

    /// Refuses the pairing: the link closes with `PAIRING_REJECTED`.
    pub fn reject(self) {
        let _ = self.answer.send(false);
    }

    /// Whether the link that asked has given up (it closed, or its pairing timed out): an
    /// answer then changes nothing.
    pub fn is_abandoned(&self) -> bool {
        self.answer.is_closed()
    }
}

/// The pairing requests of a device whose policy is [`PairingPolicy::Confirm`], in the order
/// their links finished their handshakes.
#[derive(Debug)]
pub struct PairingRequests {
    requests: mpsc::Receiver<PairingRequest>,
}

impl PairingRequests {
    /// The next request; `None` once no link can ask any more (the device is gone).
    pub async fn next(&mut self) -> Option<PairingRequest> {
        self.requests.recv().await
    }

    /// The next request if one is waiting now.
    pub fn try_next(&mut self) -> Option<PairingRequest> {
        self.requests.try_recv().ok()
    }
}

/// How many requests may wait for the owner at once; a link that would be one more is refused.
pub(crate) const WAITING_REQUESTS: usize = 16;

/// Where links put their requests, and the one receiver the owner takes.
#[derive(Debug)]
pub(crate) struct PairingQueue {
    sender: mpsc::Sender<PairingRequest>,
    receiver: Mutex<Option<mpsc::Receiver<PairingRequest>>>,
}

impl PairingQueue {
    pub(crate) fn new() -> Self {
        let (sender, receiver) = mpsc::channel(WAITING_REQUESTS);
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// The requests, to the first caller only.
    pub(crate) fn take(&self) -> Option<PairingRequests> {
        self.receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|requests| PairingRequests { requests })
    }

    /// Asks the owner; `Ok(answer)`, or `Err` with why no one can answer.
    pub(crate) async fn ask(
        &self,
        peer: &DeviceId,
        key: PublicKey,
        code: PairingCode,
    ) -> Result<bool, &'static str> {
        let (answer, answered) = oneshot::channel();
        let request = PairingRequest {
            peer: peer.clone(),
            key,
            code,
            answer,
        };
        self.sender.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "too many pairing requests wait for an answer",
            mpsc::error::TrySendError::Closed(_) => "no one answers pairing requests",
        })?;
        answered
            .await
            .map_err(|_| "the pairing request was dropped unanswered")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_six_digits() {
        assert_eq!(PairingCode::new(42).unwrap().to_string(), "000042");
        assert_eq!(PairingCode::new(999_999).unwrap().to_string(), "999999");
        assert_eq!(PairingCode::new(1_000_000), None);
    }

    #[tokio::test]
    async fn a_request_is_answered_through_the_queue() {
        let queue = PairingQueue::new();
        let mut requests = queue.take().unwrap();
        assert!(queue.take().is_none(), "the requests go to one owner");
        let peer = DeviceId::new("tablet").unwrap();
        let key = PublicKey::from_bytes([3; 32]);
        let code = PairingCode::new(123_456).unwrap();
        let (answer, ()) = tokio::join!(queue.ask(&peer, key, code), async {
            let request = requests.next().await.unwrap();
            assert_eq!(request.peer(), &peer);
            assert_eq!(request.code(), code);
            assert_eq!(request.fingerprint(), key.fingerprint());
            request.reject();
        });
        assert_eq!(answer, Ok(false));
        let (answer, ()) = tokio::join!(queue.ask(&peer, key, code), async {
            drop(requests.next().await.unwrap());
        });
        assert!(answer.is_err(), "a dropped request is no acceptance");
        drop(requests);
        assert_eq!(
            queue.ask(&peer, key, code).await,
            Err("no one answers pairing requests")
        );
    }
}

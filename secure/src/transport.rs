//! [`Secure`]: a transport whose links are all secure links.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, MutexGuard};

use acm_transport::{
    Capabilities, Closure, DeviceId, DeviceInfo, Link, PeerAddress, Transport, TransportError,
};
use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc};
use tokio::task::AbortHandle;

use crate::config::SecureConfig;
use crate::error::SecureError;
use crate::establish::{establish, establish_observed};
use crate::link::SecureLink;
use crate::pairing::PairingRequests;
use crate::record::{MAX_FRAME_LEN, RECORD_OVERHEAD};

/// How many accepted links may be in their handshake or pairing at once, so that a peer cannot
/// make this side hold an unbounded number of half-open links. A link accepted while that many
/// open takes the place of one of them, which is dropped (SPEC `LIMIT-2`): one from the address
/// that holds the most places, the oldest of those that have not sent a handshake message yet,
/// or the oldest of them when all have. Links that never finish their handshake cannot keep
/// other devices out, and links that stall cannot push out one that moves.
pub const OPENING_LINKS: usize = 64;

/// How many of the [`OPENING_LINKS`] places the links from one address may hold, on a transport
/// whose links have addresses ([`Link::peer_address`]): a quarter of them, as many as the TCP
/// binding lets one address hold in its own opening. A link from an address that holds that
/// many takes the place of one of that address's own, so that an address that opens links as
/// fast as it can only pushes out its own, never a link from elsewhere.
pub const OPENING_LINKS_PER_ADDRESS: usize = OPENING_LINKS / 4;

/// A transport whose links run the secure layer (SPEC section 17) over `T`'s links: every link
/// it dials or accepts is a [`SecureLink`], handed out once its handshake and pairing are done.
///
/// Accepted links open concurrently, so that a pairing that waits for its owner holds up no
/// other link; dialing waits for its own link's pairing.
pub struct Secure<T> {
    inner: Arc<T>,
    config: SecureConfig,
    opened: Mutex<mpsc::UnboundedReceiver<SecureLink>>,
    opened_tx: mpsc::UnboundedSender<SecureLink>,
    opening: Arc<SyncMutex<Opening>>,
}

/// The accepted links in their handshake, oldest first.
#[derive(Default)]
struct Opening {
    next: u64,
    tasks: BTreeMap<u64, Place>,
}

/// One accepted link in its handshake: its task, whether the peer has sent a handshake
/// message on it yet, and where it comes from.
struct Place {
    task: AbortHandle,
    moved: Arc<AtomicBool>,
    address: Option<PeerAddress>,
}

impl Opening {
    /// The places held from `address`.
    fn held_from(&self, address: Option<PeerAddress>) -> usize {
        self.tasks.values().filter(|p| p.address == address).count()
    }

    /// The opening to drop for a new one from `address`, if one must be: when `address` holds
    /// its share, one of its own; when every place is taken, one of the address that holds the
    /// most (the one whose oldest place is oldest, of those that hold as many). Of those, the
    /// oldest that has not moved, or the oldest.
    fn victim(&self, address: Option<PeerAddress>) -> Option<u64> {
        let from = if address.is_some() && self.held_from(address) >= OPENING_LINKS_PER_ADDRESS {
            address
        } else if self.tasks.len() >= OPENING_LINKS {
            let mut held: Vec<(Option<PeerAddress>, usize)> = Vec::new();
            // In the order of their oldest place, so that the first of the most is the oldest.
            for place in self.tasks.values() {
                match held.iter_mut().find(|(a, _)| *a == place.address) {
                    Some((_, n)) => *n += 1,
                    None => held.push((place.address, 1)),
                }
            }
            let most = held.iter().map(|(_, n)| *n).max()?;
            held.into_iter().find(|(_, n)| *n == most)?.0
        } else {
            return None;
        };
        let theirs = || self.tasks.iter().filter(move |(_, p)| p.address == from);
        theirs()
            .find(|(_, p)| !p.moved.load(Ordering::Acquire))
            .or_else(|| theirs().next())
            .map(|(id, _)| *id)
    }
}

/// Forgets an opening task once it ends (or is aborted to make room).
struct Leave {
    opening: Arc<SyncMutex<Opening>>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        lock(&self.opening).tasks.remove(&self.id);
    }
}

fn lock(opening: &SyncMutex<Opening>) -> MutexGuard<'_, Opening> {
    opening.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> std::fmt::Debug for Secure<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure")
            .field("identity", &self.config.identity)
            .finish_non_exhaustive()
    }
}

impl<T: Transport + 'static> Secure<T> {
    /// Wraps `inner`, securing its links as `config` says.
    pub fn new(inner: T, config: SecureConfig) -> Self {
        let (opened_tx, opened) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(inner),
            config,
            opened: Mutex::new(opened),
            opened_tx,
            opening: Arc::default(),
        }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The configuration.
    pub fn config(&self) -> &SecureConfig {
        &self.config
    }

    /// The pairing requests (see [`SecureConfig::pairing_requests`]).
    pub fn pairing_requests(&self) -> Option<PairingRequests> {
        self.config.pairing_requests()
    }

    /// Opens `link` in a task of its own and hands it to `accept` when it is up; when its
    /// address holds [`OPENING_LINKS_PER_ADDRESS`] places, or [`OPENING_LINKS`] are opening
    /// already, one of them is dropped for it ([`OPENING_LINKS`] says which).
    fn open_accepted(&self, link: Box<dyn Link>) {
        let config = self.config.clone();
        let opened = self.opened_tx.clone();
        let address = link.peer_address();
        let mut opening = lock(&self.opening);
        if let Some(victim) = opening
            .victim(address)
            .and_then(|id| opening.tasks.remove(&id))
        {
            tracing::debug!("dropped a link in its handshake for a new one");
            victim.task.abort();
        }
        let id = opening.next;
        opening.next = opening.next.wrapping_add(1);
        let leave = Leave {
            opening: self.opening.clone(),
            id,
        };
        let moved = Arc::new(AtomicBool::new(false));
        let progress = moved.clone();
        // Started under the lock, so that it is known before its place can be given back.
        let task = tokio::spawn(async move {
            let peer = link.peer_device().clone();
            let progress = move || progress.store(true, Ordering::Release);
            match establish_observed(link, &config, &progress).await {
                Ok(link) => {
                    let _ = opened.send(link);
                }
                // A peer that closes gracefully before the handshake (one that only checks
                // which device answers) broke nothing.
                Err(SecureError::Transport(TransportError::Closed(Closure::Peer(reason))))
                    if reason.code == 0 =>
                {
                    tracing::debug!(%peer, "a link closed by its peer before its handshake");
                }
                Err(error) => tracing::warn!(%peer, %error, "refused a link"),
            }
            drop(leave);
        });
        let place = Place {
            task: task.abort_handle(),
            moved,
            address,
        };
        opening.tasks.insert(id, place);
    }
}

#[async_trait]
impl<T: Transport + 'static> Transport for Secure<T> {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = self.inner.capabilities();
        capabilities.max_frame_size = capabilities
            .max_frame_size
            .saturating_sub(RECORD_OVERHEAD)
            .min(MAX_FRAME_LEN);
        capabilities
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        self.inner.discover().await
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        let link = self.inner.dial(device).await?;
        match establish(link, &self.config).await {
            Ok(link) => Ok(Box::new(link)),
            Err(error) => {
                tracing::warn!(peer = %device, %error, "refused a link");
                Err(error.into())
            }
        }
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        let mut opened = self.opened.lock().await;
        loop {
            tokio::select! {
                Some(link) = opened.recv() => return Ok(Box::new(link)),
                link = self.inner.accept() => self.open_accepted(link?),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ip(last: u8) -> Option<PeerAddress> {
        Some(PeerAddress::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))))
    }

    /// Openings with the addresses given, oldest first, those in `moved` having moved.
    fn opening(addresses: &[Option<PeerAddress>], moved: &[u64]) -> Opening {
        let mut opening = Opening::default();
        for address in addresses {
            let id = opening.next;
            opening.next += 1;
            let place = Place {
                task: tokio::spawn(async {}).abort_handle(),
                moved: Arc::new(AtomicBool::new(moved.contains(&id))),
                address: *address,
            };
            opening.tasks.insert(id, place);
        }
        opening
    }

    #[tokio::test]
    async fn nothing_gives_way_while_places_are_free_and_no_address_holds_its_share() {
        let places = opening(&[ip(1); OPENING_LINKS_PER_ADDRESS - 1], &[]);
        assert_eq!(places.victim(ip(1)), None);
        let places = opening(&[None; OPENING_LINKS - 1], &[]);
        assert_eq!(places.victim(None), None);
    }

    #[tokio::test]
    async fn an_address_that_holds_its_share_gives_way_to_itself_its_oldest_unmoved_first() {
        let mut addresses = vec![ip(2)];
        addresses.extend([ip(1); OPENING_LINKS_PER_ADDRESS]);
        let places = opening(&addresses, &[1]);
        // Place 1 (ip 1's oldest) has moved; place 2 is its oldest that has not.
        assert_eq!(places.victim(ip(1)), Some(2));
        // Another address still has room.
        assert_eq!(places.victim(ip(2)), None);
        assert_eq!(places.victim(ip(3)), None);
        // When all of its own have moved, its oldest.
        let all: Vec<u64> = (0..=OPENING_LINKS_PER_ADDRESS as u64).collect();
        assert_eq!(opening(&addresses, &all).victim(ip(1)), Some(1));
    }

    #[tokio::test]
    async fn when_all_places_are_taken_the_address_that_holds_most_gives_way() {
        let share = OPENING_LINKS_PER_ADDRESS;
        let held = [share - 2, share - 1, share - 3, share - 4];
        let mut addresses = Vec::new();
        for (n, held) in (1..).zip(held) {
            addresses.extend(vec![ip(n); held]);
        }
        addresses.extend(vec![ip(5); OPENING_LINKS - addresses.len()]);
        assert!(addresses.iter().filter(|a| **a == ip(5)).count() < share - 1);
        // ip 2 holds the most; its places begin after ip 1's, and its first two have moved.
        let first = (share - 2) as u64;
        let places = opening(&addresses, &[0, first, first + 1]);
        for newcomer in [ip(1), ip(3), ip(6), None] {
            assert_eq!(places.victim(newcomer), Some(first + 2));
        }
        // Of addresses that hold as many, the one whose oldest place is oldest.
        let mut even = Vec::new();
        for n in 1..=(OPENING_LINKS / share) as u8 {
            even.extend(vec![ip(n); share]);
        }
        assert_eq!(even.len(), OPENING_LINKS);
        let places = opening(&even, &[]);
        assert_eq!(places.victim(ip(100)), Some(0));
    }

    #[tokio::test]
    async fn links_without_addresses_share_the_places_the_oldest_unmoved_giving_way() {
        let places = opening(&[None; OPENING_LINKS], &[0, 1, 3]);
        assert_eq!(places.victim(None), Some(2));
        let all: Vec<u64> = (0..OPENING_LINKS as u64).collect();
        assert_eq!(opening(&[None; OPENING_LINKS], &all).victim(None), Some(0));
    }
}

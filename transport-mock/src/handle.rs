//! The handle a test holds on a link to watch it and inject faults.

use std::fmt;
use std::sync::Arc;

use acm_transport::{CloseReason, Closure, DeviceId};
use tokio::time::Instant;

use crate::direction::DirectionStats;
use crate::error::MockError;
use crate::fault::Fault;
use crate::link::{LinkShared, Side};

/// A test's handle on a link between two mock devices: it injects faults, closes the link from
/// the network's side, and reads counters. Get one from
/// [`MockNetwork::links`](crate::MockNetwork::links) or
/// [`LinkEvents`](crate::LinkEvents). Cheap to clone; holding one does not keep the link open.
#[derive(Clone)]
pub struct LinkHandle {
    shared: Arc<LinkShared>,
}

impl LinkHandle {
    /// A handle on `shared`.
    pub(crate) fn new(shared: Arc<LinkShared>) -> Self {
        Self { shared }
    }

    /// The link's creation index on its network: 0 for the first link dialed, then 1, ...
    pub fn index(&self) -> u64 {
        self.shared.index
    }

    /// The device that dialed the link.
    pub fn dialer(&self) -> &DeviceId {
        &self.shared.devices[0]
    }

    /// The device that accepted the link.
    pub fn acceptor(&self) -> &DeviceId {
        &self.shared.devices[1]
    }

    /// Injects `fault` into the direction that carries the frames sent by `from`. Fails if
    /// `from` is not one of the link's two devices.
    pub fn inject(&self, from: &DeviceId, fault: Fault) -> Result<(), MockError> {
        let side = self.side_of(from)?;
        self.shared.change(|state| {
            state.directions[side.index()].inject(fault, Instant::now());
        });
        Ok(())
    }

    /// The counters of the direction that carries the frames sent by `from`. Fails if `from`
    /// is not one of the link's two devices.
    pub fn stats(&self, from: &DeviceId) -> Result<DirectionStats, MockError> {
        let side = self.side_of(from)?;
        Ok(self.shared.lock().directions[side.index()].stats())
    }

    /// How the link ended for `device`'s end, or `None` while it is open. Fails if `device` is
    /// not one of the link's two devices.
    pub fn closure(&self, device: &DeviceId) -> Result<Option<Closure>, MockError> {
        let side = self.side_of(device)?;
        Ok(self.shared.lock().closure[side.index()].clone())
    }

    /// Whether the link is still open.
    pub fn is_open(&self) -> bool {
        !self.shared.is_closed()
    }

    /// Closes the link gracefully, as if each side's peer had closed it with `reason`: each
    /// side receives the frames already sent to it, then sees [`Closure::Peer`] with `reason`.
    /// Does nothing if the link has already ended.
    pub fn close(&self, reason: CloseReason) {
        self.shared.close_both(reason);
    }

    /// Breaks the link, as a reset or a lost radio would: both sides see [`Closure::Lost`] with
    /// the text `what`, and the frames in flight vanish. Does nothing if the link has already
    /// ended.
    pub fn lose(&self, what: &str) {
        self.shared.lose(what);
    }

    /// The side of `device`, or the error that says it is not on the link.
    fn side_of(&self, device: &DeviceId) -> Result<Side, MockError> {
        self.shared
            .side_of(device)
            .ok_or_else(|| MockError::NotOnLink(device.clone()))
    }
}

impl fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkHandle")
            .field("index", &self.index())
            .field("dialer", self.dialer())
            .field("acceptor", self.acceptor())
            .field("open", &self.is_open())
            .finish()
    }
}

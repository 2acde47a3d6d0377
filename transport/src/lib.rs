//! The traits that carry acm frames between devices.
//!
//! acm runs over any reliable, ordered, message-preserving channel between two devices: a
//! Bluetooth LE L2CAP channel, a TCP connection, an in-memory pipe. This crate names that
//! channel ([`Link`]) and the thing that makes links ([`Transport`]), together with the error
//! type they share. It knows nothing of the acm protocol: a frame here is an opaque, non-empty
//! run of bytes that arrives whole, once, and in order, or not at all.
//!
//! # Contract
//!
//! * [`Link::send`] hands one frame to the link. It waits while the link has no room
//!   (backpressure) and fails with [`TransportError::FrameTooLarge`] for a frame over
//!   [`Link::max_frame_size`] and [`TransportError::EmptyFrame`] for an empty one, sending
//!   nothing in either case.
//! * [`Link::recv`] returns the next frame exactly as it was sent. When the link has ended it
//!   returns [`TransportError::Closed`] with the [`Closure`] that says how, every time it is
//!   called from then on.
//! * [`Link::close`] is graceful: the frames sent before it are delivered before the peer sees the
//!   close, and the peer sees the [`CloseReason`] given. A link that fails instead (a reset, a
//!   lost radio, a dead controller) ends with [`Closure::Lost`] on both sides and never delivers
//!   a partial frame. Dropping a link that is still open counts as a failure: the peer sees
//!   [`Closure::Lost`].
//! * [`Link::closure`] becomes `Some` as soon as the link has ended, possibly while frames sent
//!   before a graceful close are still waiting to be received: a reader keeps calling
//!   [`Link::recv`] until it fails, and loses nothing.
//! * Once the peer has closed the link, [`Link::send`] fails with [`TransportError::Closed`];
//!   frames on their way to a side that has closed are discarded.
//! * [`Link::max_frame_size`] is normally fixed for the life of a link, but a transport may lower
//!   it (a renegotiated radio link; the mock transport as a fault), so a sender reads it before
//!   each frame.
//! * A frame is opaque to a transport that carries messages; a transport over a byte stream
//!   needs the frame's shape to delimit it (SPEC `FRAME-1`: a 12-byte header whose payload length
//!   gives the bytes after it) and may refuse other bytes with
//!   [`TransportError::Unsupported`]. acm's own frames always have that shape.
//! * [`Link::send_buf`] and [`Link::recv_buf`] carry a frame held as two parts ([`FrameBuf`]):
//!   the frame is the same bytes as the parts joined, and is sent, refused and received exactly
//!   as [`Link::send`] and [`Link::recv`] would. A transport may keep the parts apart on their
//!   way or join them; a receiver takes any split.
//! * [`Link::send_bufs`] sends several such frames in order, exactly as that many calls of
//!   [`Link::send_buf`] would.
//! * Frames that begin `AC 4D 00` (an acm header with version 0, which no acm frame carries)
//!   are left to transports for messages of their own, such as the BLE binding's OPEN and
//!   CLOSE: a transport may refuse to send one with [`TransportError::Unsupported`].
//! * To stop waiting in [`Transport::accept`], drop its future; a transport that has shut down
//!   fails it with [`TransportError::Shutdown`].
//!
//! # Example
//!
//! Code written against the traits works with every transport:
//!
//! ```
//! use acm_transport::{CloseReason, DeviceId, Transport, TransportError};
//! use bytes::Bytes;
//!
//! /// Dials `peer`, sends one frame, waits for one frame back and closes the link.
//! async fn ping(transport: &dyn Transport, peer: &DeviceId) -> Result<Bytes, TransportError> {
//!     let link = transport.dial(peer).await?;
//!     link.send(Bytes::from_static(b"ping")).await?;
//!     let answer = link.recv().await?;
//!     link.close(CloseReason::normal()).await;
//!     Ok(answer)
//! }
//!
//! let peer = DeviceId::new("tablet-7f3a").unwrap();
//! assert_eq!(peer.as_str(), "tablet-7f3a");
//! assert!(DeviceId::new("").is_err());
//! # let _ = ping;
//! ```

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

mod device;

pub use device::{Capabilities, DeviceId, DeviceInfo, InvalidDeviceId};

/// Why a link was closed on purpose: a code and a text, both opaque to the transport. The
/// transport carries them to the peer where it can; code 0 means a normal close.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CloseReason {
    /// A code chosen by the layer above; 0 is a normal close.
    pub code: u32,
    /// A text for logs and people.
    pub message: String,
}

impl CloseReason {
    /// A reason with the given code and text.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A normal close: code 0, no text.
    pub fn normal() -> Self {
        Self::new(0, "")
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "code {}", self.code)
        } else {
            write!(f, "code {}: {}", self.code, self.message)
        }
    }
}

/// How a link ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Closure {
    /// This side closed it with [`Link::close`].
    Local(CloseReason),
    /// The peer closed it gracefully, with this reason.
    Peer(CloseReason),
    /// The link failed: the peer vanished, the connection was reset, the radio or the
    /// controller was lost, or the transport shut down. The text says what happened.
    Lost(String),
}

impl fmt::Display for Closure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(reason) => write!(f, "closed locally ({reason})"),
            Self::Peer(reason) => write!(f, "closed by the peer ({reason})"),
            Self::Lost(what) => write!(f, "lost: {what}"),
        }
    }
}

/// Which side of a link opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// This side called [`Transport::dial`].
    Dialer,
    /// This side got the link from [`Transport::accept`].
    Acceptor,
}

impl Role {
    /// `local` and `peer` (two things of a link's ends, such as their device ids) put in the
    /// order (dialer's, acceptor's), as this side's role says.
    pub fn dialer_first<'a, T: ?Sized>(self, local: &'a T, peer: &'a T) -> (&'a T, &'a T) {
        match self {
            Self::Dialer => (local, peer),
            Self::Acceptor => (peer, local),
        }
    }
}

/// What went wrong in a transport or on a link.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No device with this id can be reached.
    #[error("device {0} cannot be reached")]
    Unreachable(DeviceId),
    /// Nothing accepted a connection at the address known for the device (a TCP port nobody
    /// listens on, a host that cannot be reached).
    #[error("nothing listens at {address} ({why})")]
    NotListening {
        /// The device dialed.
        device: DeviceId,
        /// Where it was said to be, as the transport writes addresses (`tcp://HOST:PORT`).
        address: String,
        /// What the system said, for people (`connection refused`).
        why: String,
    },
    /// Another device answered at the address known for the device.
    #[error("device {found} answers at {address}, not {device}")]
    OtherDevice {
        /// The device dialed.
        device: DeviceId,
        /// The device that answered.
        found: DeviceId,
        /// Where.
        address: String,
    },
    /// Something answered at the address known for the device, but not in this protocol's
    /// binding: another service listens there.
    #[error("the service at {address} does not speak acm ({why})")]
    NotAcm {
        /// Where, as the transport writes addresses.
        address: String,
        /// What it sent that the binding does not allow, for people.
        why: String,
    },
    /// The device was reached but refused the link.
    #[error("device {0} refused the link")]
    Refused(DeviceId),
    /// The link has ended; the closure says how.
    #[error("link {0}")]
    Closed(Closure),
    /// A frame longer than the link's maximum was not sent.
    #[error("frame of {len} bytes exceeds the link's maximum of {max} bytes")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The link's maximum frame size.
        max: usize,
    },
    /// An empty frame was not sent: a frame holds at least one byte.
    #[error("an empty frame cannot be sent")]
    EmptyFrame,
    /// The transport has shut down and makes no more links.
    #[error("the transport has shut down")]
    Shutdown,
    /// The transport cannot do what was asked.
    #[error("{0} is not supported by this transport")]
    Unsupported(&'static str),
    /// An operation took longer than the transport allows.
    #[error("timed out while {0}")]
    TimedOut(&'static str),
    /// An I/O error from the system under the transport.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One frame held as two runs of bytes that follow each other, a head and a body, so that a
/// frame made of a small header and a large payload that lives elsewhere (a slice of an app's
/// buffer) need not be copied into one buffer to be sent. The split is not part of the frame:
/// a transport may deliver it anywhere, or join the parts, and a receiver must accept any split.
///
/// ```
/// use acm_transport::FrameBuf;
/// use bytes::Bytes;
///
/// let frame = FrameBuf::new(Bytes::from_static(b"head:"), Bytes::from_static(b"body"));
/// assert_eq!(frame.len(), 9);
/// let mut start = [0u8; 7];
/// assert_eq!(frame.copy_prefix(&mut start), 7);
/// assert_eq!(&start, b"head:bo");
/// assert_eq!(frame.into_bytes(), Bytes::from_static(b"head:body"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameBuf {
    head: Bytes,
    body: Bytes,
}

impl FrameBuf {
    /// The frame whose bytes are `head`, then `body`.
    pub fn new(head: Bytes, body: Bytes) -> Self {
        Self { head, body }
    }

    /// The first part.
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The second part; empty when the frame is in one piece.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The frame's length: both parts together.
    pub fn len(&self) -> usize {
        self.head.len().saturating_add(self.body.len())
    }

    /// Whether the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.body.is_empty()
    }

    /// The two parts.
    pub fn into_parts(self) -> (Bytes, Bytes) {
        (self.head, self.body)
    }

    /// The frame as one run of bytes: a part as it is when the other is empty, the two copied
    /// into one buffer otherwise.
    pub fn into_bytes(self) -> Bytes {
        if self.body.is_empty() {
            self.head
        } else if self.head.is_empty() {
            self.body
        } else {
            let mut joined = Vec::with_capacity(self.len());
            joined.extend_from_slice(&self.head);
            joined.extend_from_slice(&self.body);
            joined.into()
        }
    }

    /// Copies the frame's first bytes into `dst`, across the parts; returns how many were
    /// copied (fewer than `dst.len()` when the frame is shorter).
    pub fn copy_prefix(&self, dst: &mut [u8]) -> usize {
        let mut copied = 0;
        for part in [&self.head, &self.body] {
            let Some(rest) = dst.get_mut(copied..) else {
                break;
            };
            let n = rest.len().min(part.len());
            rest[..n].copy_from_slice(&part[..n]);
            copied += n;
        }
        copied
    }
}

impl From<Bytes> for FrameBuf {
    fn from(frame: Bytes) -> Self {
        Self::new(frame, Bytes::new())
    }
}

/// Where a link's peer is on the network its transport runs over, as the transport saw it (not
/// as the peer claims it): what a device groups links by to bound what one place can hold open
/// (SPEC `LIMIT-2`). Links from one address may be one peer's or several peers' behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PeerAddress {
    /// An IP address (the TCP binding), without its port: a host opens as many ports as it
    /// likes.
    Ip(IpAddr),
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A reliable, ordered, frame-preserving channel to one peer device. See the crate docs for the
/// contract every implementation keeps.
///
/// All methods take `&self`, so one task can send while another receives; calls to
/// [`Link::recv`] from several tasks at once are served one at a time.
#[async_trait]
pub trait Link: Send + Sync + fmt::Debug {
    /// This device's id.
    fn local_device(&self) -> &DeviceId;

    /// The peer device's id.
    fn peer_device(&self) -> &DeviceId;

    /// Which side opened the link.
    fn role(&self) -> Role;

    /// The largest frame this link carries, in bytes.
    fn max_frame_size(&self) -> usize;

    /// Sends one frame, waiting while the link has no room for it. Fails without sending
    /// anything if the frame is empty or larger than [`Link::max_frame_size`], and with
    /// [`TransportError::Closed`] once the link has ended.
    async fn send(&self, frame: Bytes) -> Result<(), TransportError>;

    /// Receives the next frame, waiting until one arrives. Once the link has ended and every
    /// frame sent before a graceful close has been received, fails with
    /// [`TransportError::Closed`].
    async fn recv(&self) -> Result<Bytes, TransportError>;

    /// Sends one frame held in two parts, as [`Link::send`] sends it. A transport that can
    /// carry the parts without joining them (an in-memory link, vectored writes) overrides
    /// this; the default joins them and calls [`Link::send`].
    async fn send_buf(&self, frame: FrameBuf) -> Result<(), TransportError> {
        self.send(frame.into_bytes()).await
    }

    /// Sends `frames` in order, as calls of [`Link::send_buf`] one after the other would: each
    /// is checked and sent as `send_buf` checks and sends it, and the first that fails fails
    /// the call, the frames before it sent and those after it not. A transport that can write
    /// several frames at once (vectored writes) overrides this; the default calls
    /// [`Link::send_buf`] for each.
    async fn send_bufs(&self, frames: Vec<FrameBuf>) -> Result<(), TransportError> {
        for frame in frames {
            self.send_buf(frame).await?;
        }
        Ok(())
    }

    /// Sends one frame as [`Link::send_buf`] does if the link has room for it now, without
    /// waiting, and gives it back (`Ok(Some(frame))`) if it would have to wait: the caller then
    /// sends it with [`Link::send_buf`]. Fails as [`Link::send_buf`] does. Frames keep their
    /// order only if no other send is under way when this is called. A transport that can tell
    /// at once whether a frame fits (an in-memory link) overrides this, which spares its
    /// callers a future per frame; the default gives every frame back.
    fn try_send_buf(&self, frame: FrameBuf) -> Result<Option<FrameBuf>, TransportError> {
        Ok(Some(frame))
    }

    /// Receives the next frame as [`Link::recv`] does, possibly in two parts: as the sender's
    /// [`Link::send_buf`] gave them, on a transport that keeps them apart. The default calls
    /// [`Link::recv`].
    async fn recv_buf(&self) -> Result<FrameBuf, TransportError> {
        self.recv().await.map(FrameBuf::from)
    }

    /// Closes the link gracefully with `reason`. Frames already sent are delivered first.
    /// Closing a link that has already ended does nothing.
    ///
    /// A transport may read on after the close to discard what the peer still sends (TCP
    /// does, so that a peer whose sends wait sees the link end): a caller holding a receive it
    /// will no longer poll drops it first, as the receive may hold the link's reading side.
    async fn close(&self, reason: CloseReason);

    /// How the link ended, or `None` while it is open.
    fn closure(&self) -> Option<Closure>;

    /// The bytes of the binding's opening as both sides sent them: the dialer's opening
    /// message, then the acceptor's (the OPEN messages of the TCP and Bluetooth LE bindings),
    /// the same on both ends of the link. Empty for a transport whose links open without
    /// messages of their own, such as the in-memory mock: the default. The secure layer binds
    /// them into its handshake (SPEC section 17), so that a change to them on the way fails it.
    fn opening(&self) -> Bytes {
        Bytes::new()
    }

    /// The peer's address on the transport's network, where the transport has addresses; `None`
    /// (the default) where it has none, such as the in-memory mock. A wrapper of another link
    /// gives the wrapped link's.
    fn peer_address(&self) -> Option<PeerAddress> {
        None
    }
}

/// A way to reach other devices: it dials them, accepts their links, and lists the ones nearby.
#[async_trait]
pub trait Transport: Send + Sync {
    /// This device's id on the transport.
    fn local_device(&self) -> &DeviceId;

    /// What the transport can do.
    fn capabilities(&self) -> Capabilities;

    /// Lists the devices that can be dialed now (the equivalent of OpenHarmony's
    /// `getAvailableDeviceListSync`). Fails with [`TransportError::Unsupported`] if the transport
    /// cannot discover.
    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError>;

    /// Opens a link to `device`.
    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError>;

    /// Waits for the next link another device opens to this one.
    async fn accept(&self) -> Result<Box<dyn Link>, TransportError>;
}

macro_rules! forward_transport {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        impl<T: Transport + ?Sized> Transport for $ptr<T> {
            fn local_device(&self) -> &DeviceId {
                (**self).local_device()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
                (**self).discover().await
            }
            async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
                (**self).dial(device).await
            }
            async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
                (**self).accept().await
            }
        }
    )*};
}

forward_transport!(Arc, Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_accepts_printable_text_up_to_the_limit() {
        let longest = "d".repeat(DeviceId::MAX_LEN);
        assert_eq!(DeviceId::new(longest.clone()).unwrap().as_str(), longest);
        assert_eq!(DeviceId::new("手机").unwrap().to_string(), "手机");
    }

    #[test]
    fn device_id_refuses_empty_long_and_control_text() {
        assert_eq!(DeviceId::new(""), Err(InvalidDeviceId::Empty));
        assert_eq!(
            DeviceId::new("d".repeat(DeviceId::MAX_LEN + 1)),
            Err(InvalidDeviceId::TooLong(DeviceId::MAX_LEN + 1))
        );
        assert_eq!(
            DeviceId::new("a\nb"),
            Err(InvalidDeviceId::ControlCharacter)
        );
    }

    #[test]
    fn check_says_what_new_says() {
        let long = "d".repeat(DeviceId::MAX_LEN + 1);
        for id in ["", "phone", "手机", "a\nb", "a\u{85}b", &long] {
            assert_eq!(DeviceId::check(id), DeviceId::new(id).map(|_| ()), "{id:?}");
        }
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let err = TransportError::FrameTooLarge { len: 300, max: 244 };
        assert_eq!(
            err.to_string(),
            "frame of 300 bytes exceeds the link's maximum of 244 bytes"
        );
        let closed = TransportError::Closed(Closure::Peer(CloseReason::new(3, "bye")));
        assert_eq!(closed.to_string(), "link closed by the peer (code 3: bye)");
        assert_eq!(
            Closure::Lost("connection reset".into()).to_string(),
            "lost: connection reset"
        );
    }

    #[test]
    fn dialer_first_puts_the_dialers_end_first_whichever_side_asks() {
        assert_eq!(Role::Dialer.dialer_first("me", "you"), ("me", "you"));
        assert_eq!(Role::Acceptor.dialer_first("me", "you"), ("you", "me"));
    }

    #[test]
    fn capabilities_builders_set_each_flag() {
        let caps = Capabilities::new(244)
            .with_carries_data(false)
            .with_discovery(false);
        assert_eq!(caps.max_frame_size, 244);
        assert!(!caps.carries_data);
        assert!(!caps.discovery);
        assert!(Capabilities::new(1).carries_data);
    }
}

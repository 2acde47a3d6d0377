//! The settings of a TCP transport.

use std::time::Duration;

use crate::binding::{
    CLOSE_WAIT, DEFAULT_MAX_FRAME_SIZE, LARGEST_FRAME, OPEN_WAIT, SMALLEST_MAX_FRAME_SIZE,
};
use crate::error::TcpError;

/// The largest buffer a setting may ask for: 1 GiB.
const LARGEST_BUFFER: usize = 1 << 30;

/// How a [`TcpTransport`](crate::TcpTransport) and its links behave.
///
/// ```
/// use std::time::Duration;
/// use acm_transport_tcp::TcpConfig;
///
/// let config = TcpConfig::new()
///     .with_max_frame_size(1 << 20)
///     .with_receive_buffer(64 * 1024)
///     .with_open_timeout(Duration::from_secs(3));
/// assert_eq!(config.max_frame_size, 1 << 20);
/// assert!(config.validate().is_ok());
/// assert!(TcpConfig::new().with_max_frame_size(100).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpConfig {
    /// The largest frame, header included, this side receives and sends: a header announcing
    /// a larger frame ends the link (`TCP-3`). 128 to 16 777 227; 65 535 by default.
    pub max_frame_size: usize,
    /// Bounds nothing any more, and is kept so that configurations that set it stay valid: a
    /// link writes each frame to the socket in the task that calls
    /// [`send`](acm_transport::Link::send), which waits while the socket's own buffer is full.
    /// 256 KiB by default.
    pub send_buffer: usize,
    /// The most bytes a link reads from the socket ahead of the frame
    /// [`recv`](acm_transport::Link::recv) waits for. A link reads only while `recv` waits, so
    /// a peer that sends faster than the frames are taken is held back by TCP's flow control.
    /// A link also keeps up to 8 times this in buffers of large frames it has handed out, to
    /// read into again once they are let go. 256 KiB by default.
    pub receive_buffer: usize,
    /// How long a dial may take to connect. 10 s by default.
    pub connect_timeout: Duration,
    /// How long each side waits for the peer's OPEN. 10 s by default (`TCP-5`).
    pub open_timeout: Duration,
    /// How long a side that closed a link waits for what it sent to go out and for the peer to
    /// end the connection, before it drops the connection. 5 s by default (`TCP-6`).
    pub close_timeout: Duration,
    /// The links that may wait for [`accept`](acm_transport::Transport::accept); connections
    /// beyond it are dropped before the OPEN exchange. 64 by default.
    pub accept_backlog: usize,
    /// The connections whose OPEN exchange may be under way at once. A connection that comes
    /// when they are all taken takes the place of the oldest, which is dropped (SPEC
    /// `LIMIT-2`): connections that never finish their OPEN cannot keep a dialer out. 64 by
    /// default.
    pub max_pending_opens: usize,
    /// Of [`TcpConfig::max_pending_opens`], the most from one IP address: a connection from an
    /// address that has that many takes the place of the oldest of them. 16 by default.
    pub max_pending_opens_per_address: usize,
    /// How long the OPEN of a connection is waited for when it comes while at least half of
    /// [`TcpConfig::max_pending_opens`] are taken (at most [`TcpConfig::open_timeout`]). 2 s
    /// by default.
    pub pressed_open_timeout: Duration,
    /// The openings one IP address may waste before its new connections are dropped at once,
    /// before their OPEN exchange (SPEC `LIMIT-3`). An opening is wasted when this side ends it
    /// before the peer sent anything of use: its OPEN did not come in time, was malformed, or
    /// was pushed out by a newer one, or its link was ended by this side before the peer sent
    /// a frame on it. 0 refuses nobody. 256 by default.
    pub max_wasted_opens_per_address: usize,
    /// How many of an address's wasted openings are forgiven each second. 32 by default: an
    /// address refused for its waste gets an opening through every 31 ms, and is forgiven
    /// entirely 8 s after it stops.
    pub wasted_opens_forgiven_per_second: u32,
}

impl TcpConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            send_buffer: 256 * 1024,
            receive_buffer: 256 * 1024,
            connect_timeout: Duration::from_secs(10),
            open_timeout: OPEN_WAIT,
            close_timeout: CLOSE_WAIT,
            accept_backlog: 64,
            max_pending_opens: 64,
            max_pending_opens_per_address: 16,
            pressed_open_timeout: Duration::from_secs(2),
            max_wasted_opens_per_address: 256,
            wasted_opens_forgiven_per_second: 32,
        }
    }

    /// Sets the largest frame.
    #[must_use]
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`TcpConfig::send_buffer`], which bounds nothing any more.
    #[must_use]
    pub fn with_send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = bytes;
        self
    }

    /// Sets the bytes a link reads ahead of `recv`.
    #[must_use]
    pub fn with_receive_buffer(mut self, bytes: usize) -> Self {
        self.receive_buffer = bytes;
        self
    }

    /// Sets how long a dial may take to connect.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long each side waits for the peer's OPEN.
    #[must_use]
    pub fn with_open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// Sets how long a closing side waits before it drops the connection.
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets how many links may wait for `accept`.
    #[must_use]
    pub fn with_accept_backlog(mut self, links: usize) -> Self {
        self.accept_backlog = links;
        self
    }

    /// Sets how many OPEN exchanges may be under way at once.
    #[must_use]
    pub fn with_max_pending_opens(mut self, connections: usize) -> Self {
        self.max_pending_opens = connections;
        self
    }

    /// Sets how many OPEN exchanges may be under way at once from one IP address.
    #[must_use]
    pub fn with_max_pending_opens_per_address(mut self, connections: usize) -> Self {
        self.max_pending_opens_per_address = connections;
        self
    }

    /// Sets how long an OPEN is waited for while half the places for OPEN exchanges are taken.
    #[must_use]
    pub fn with_pressed_open_timeout(mut self, timeout: Duration) -> Self {
        self.pressed_open_timeout = timeout;
        self
    }

    /// Sets how many openings one address may waste before it is refused at once (0: never),
    /// and how many of them are forgiven each second.
    #[must_use]
    pub fn with_wasted_opens(mut self, per_address: usize, forgiven_per_second: u32) -> Self {
        self.max_wasted_opens_per_address = per_address;
        self.wasted_opens_forgiven_per_second = forgiven_per_second;
        self
    }

    /// Checks every setting against its range.
    pub fn validate(&self) -> Result<(), TcpError> {
        let check = |setting, value, min, max| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(TcpError::OutOfRange {
                    setting,
                    value,
                    min,
                    max,
                })
            }
        };
        check(
            "max_frame_size",
            self.max_frame_size,
            SMALLEST_MAX_FRAME_SIZE,
            LARGEST_FRAME,
        )?;
        check("send_buffer", self.send_buffer, 1, LARGEST_BUFFER)?;
        check("receive_buffer", self.receive_buffer, 1, LARGEST_BUFFER)?;
        check("accept_backlog", self.accept_backlog, 1, 1 << 16)?;
        check("max_pending_opens", self.max_pending_opens, 1, 1 << 16)?;
        check(
            "max_pending_opens_per_address",
            self.max_pending_opens_per_address,
            1,
            1 << 16,
        )?;
        check(
            "max_wasted_opens_per_address",
            self.max_wasted_opens_per_address,
            0,
            1 << 20,
        )?;
        check(
            "wasted_opens_forgiven_per_second",
            self.wasted_opens_forgiven_per_second as usize,
            1,
            1 << 20,
        )
    }

    /// The ledger's allowance of wasted openings.
    pub(crate) fn wasted_opens(&self) -> crate::waste::Allowance {
        crate::waste::Allowance {
            burst: self.max_wasted_opens_per_address,
            each: Duration::from_secs(1) / self.wasted_opens_forgiven_per_second.max(1),
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self::new()
    }
}

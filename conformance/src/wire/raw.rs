//! A TCP connection to the implementation that the suite writes byte by byte, below the TCP
//! binding (SPEC section 14): for the cases about the binding itself.

use std::time::Duration;

use acm_transport::{CloseReason, DeviceId};
use acm_transport_tcp::binding::{self, HEADER_LEN, Header, Kind};
use acm_wire::pb::{self, FrameType, LinkCloseReason};
use acm_wire::{Control, Frame, FrameKind};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use super::peer::{ANSWER, Step, describe};
use super::target::WireTarget;
use crate::report::Verdict;

/// What came from the implementation on a raw connection.
#[derive(Debug)]
pub enum Raw {
    /// A binding OPEN with the device id it names.
    Open(String),
    /// A binding CLOSE with its code and text.
    Close(u32, String),
    /// A binding message of another kind.
    Binding(u8),
    /// An acm frame.
    Frame(Frame),
    /// The connection ended (a FIN or a reset), with no partial message.
    Ended,
}

impl Raw {
    /// One line about it, for verdicts.
    pub fn describe(&self) -> String {
        match self {
            Self::Open(id) => format!("OPEN {id:?}"),
            Self::Close(code, text) => format!("CLOSE {code:#x} {text:?}"),
            Self::Binding(kind) => format!("a binding message of kind {kind}"),
            Self::Frame(frame) => describe(frame),
            Self::Ended => "the end of the connection".into(),
        }
    }
}

/// A raw connection.
pub struct RawTcp {
    stream: TcpStream,
    /// Bytes read and not yet taken.
    buf: BytesMut,
    /// The implementation's device id.
    pub iut: String,
    /// The suite's device id.
    pub suite: String,
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

impl RawTcp {
    /// Connects to the target's TCP address and sends nothing.
    pub async fn connect(target: &dyn WireTarget) -> Step<Self> {
        let Some(addr) = target.tcp_addr() else {
            return Err(Verdict::Unsupported("no TCP address".into()));
        };
        // Small socket buffers, so that flow control shows after little data (TCP-8).
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| Verdict::fail("a TCP socket", e.to_string()))?;
        let _ = socket.set_send_buffer_size(64 * 1024);
        let _ = socket.set_recv_buffer_size(64 * 1024);
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| Verdict::fail("a TCP connection", e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            buf: BytesMut::new(),
            iut: target.device_id(),
            suite: target.suite_device_id(),
        })
    }

    /// Connects and exchanges OPENs as the dialer (`TCP-5`).
    pub async fn opened(target: &dyn WireTarget) -> Step<Self> {
        let mut raw = Self::connect(target).await?;
        raw.send_open().await?;
        raw.expect_open().await?;
        Ok(raw)
    }

    /// Connects, exchanges OPENs and HELLOs: a link that is up.
    pub async fn up(target: &dyn WireTarget) -> Step<Self> {
        let mut raw = Self::opened(target).await?;
        let hello = Control::Hello(pb::Hello {
            min_version: 1,
            max_version: 1,
            device_id: raw.suite.clone(),
            max_frame_size: 65_535,
            keepalive_interval_ms: 30_000,
            features: 0,
            nonce: Bytes::from_static(&[0x5A; 16]),
            max_data_size: 100 << 20,
        });
        raw.send_control(&hello, 0).await?;
        raw.expect_frame(FrameType::Hello).await?;
        Ok(raw)
    }

    /// The connection's two halves, for a case that reads and writes at once; whatever was read
    /// and not taken is dropped.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.stream.into_split()
    }

    /// Writes `bytes` as they are.
    pub async fn write(&mut self, bytes: &[u8]) -> Step<()> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| Verdict::fail("the connection to take the bytes", e.to_string()))
    }

    /// Writes the suite's OPEN.
    pub async fn send_open(&mut self) -> Step<()> {
        let id = DeviceId::new(self.suite.clone())
            .map_err(|e| Verdict::fail("a valid suite device id", e.to_string()))?;
        self.write(&binding::open(&id)).await
    }

    /// Writes a binding CLOSE.
    pub async fn send_close(&mut self, code: u32, text: &str) -> Step<()> {
        self.write(&binding::close(&CloseReason::new(code, text)))
            .await
    }

    /// Writes a control body as one frame in version 1.
    pub async fn send_control(&mut self, control: &Control, channel: u32) -> Step<()> {
        let frame = control
            .encode_frame(1, channel)
            .map_err(|e| Verdict::fail("an encodable frame", e.to_string()))?;
        self.write(&frame).await
    }

    /// Ends the suite's sending direction (a FIN).
    pub async fn finish(&mut self) -> Step<()> {
        self.stream
            .shutdown()
            .await
            .map_err(|e| Verdict::fail("the connection to end", e.to_string()))
    }

    /// The next message from the implementation within `within`.
    pub async fn next(&mut self, within: Duration) -> Step<Raw> {
        match tokio::time::timeout(within, self.read_message()).await {
            Ok(read) => read,
            Err(_) => fail(format!("something within {within:?}"), "nothing arrived"),
        }
    }

    /// Whether nothing arrives within `within`.
    pub async fn quiet_for(&mut self, within: Duration) -> Step<()> {
        match tokio::time::timeout(within, self.read_message()).await {
            Err(_) => Ok(()),
            Ok(Ok(got)) => fail(format!("nothing for {within:?}"), got.describe()),
            Ok(Err(verdict)) => Err(verdict),
        }
    }

    async fn fill(&mut self, len: usize) -> Step<bool> {
        while self.buf.len() < len {
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Ok(false),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        Ok(true)
    }

    async fn read_message(&mut self) -> Step<Raw> {
        if !self.fill(HEADER_LEN).await? {
            if self.buf.is_empty() {
                return Ok(Raw::Ended);
            }
            return fail("whole messages (TCP-2)", "the connection ended mid-header");
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buf[..HEADER_LEN]);
        let parsed = Header::parse(&header)
            .map_err(|e| Verdict::fail("a well-formed binding message (TCP-4)", e.to_string()))?;
        let len = HEADER_LEN + parsed.payload_len();
        if !self.fill(len).await? {
            return fail("whole messages (TCP-2)", "the connection ended mid-message");
        }
        let message = self.buf.split_to(len).freeze();
        let payload = message.slice(HEADER_LEN..);
        Ok(match parsed {
            Header::Binding {
                kind: Kind::Open, ..
            } => Raw::Open(String::from_utf8_lossy(&payload).into_owned()),
            Header::Binding {
                kind: Kind::Close, ..
            } => match binding::parse_close(&payload) {
                Ok(reason) => Raw::Close(reason.code, reason.message),
                Err(e) => return fail("a valid CLOSE (TCP-4)", e.to_string()),
            },
            Header::Binding {
                kind: Kind::Other(kind),
                ..
            } => Raw::Binding(kind),
            Header::Frame { .. } => match Frame::decode_exact(message, u32::MAX, None) {
                Ok(frame) => Raw::Frame(frame),
                Err(e) => {
                    return fail(
                        "well-formed frames from the implementation (FRAME-1)",
                        format!("{e} ({})", e.rule()),
                    );
                }
            },
        })
    }

    /// Waits for the implementation's OPEN, first, naming its device (`TCP-5`).
    pub async fn expect_open(&mut self) -> Step<()> {
        match self.next(ANSWER).await? {
            Raw::Open(id) if id == self.iut => Ok(()),
            other => fail(
                format!("OPEN {:?} first (TCP-5)", self.iut),
                other.describe(),
            ),
        }
    }

    /// Waits for a frame of `wanted`, answering PINGs on the way.
    pub async fn expect_frame(&mut self, wanted: FrameType) -> Step<Frame> {
        loop {
            match self.next(ANSWER).await? {
                Raw::Frame(frame) if frame.kind == FrameKind::Known(wanted) => return Ok(frame),
                Raw::Frame(frame) if frame.kind == FrameKind::Known(FrameType::Ping) => {
                    let value = match Control::decode(FrameType::Ping, &frame.payload) {
                        Some(Ok(Control::Ping(ping))) => ping.value,
                        _ => 0,
                    };
                    self.send_control(&Control::Pong(pb::Pong { value }), 0)
                        .await?;
                }
                other => return fail(wanted.as_str_name(), other.describe()),
            }
        }
    }

    /// Checks that the link answers a PING with its PONG and nothing else first.
    pub async fn expect_alive(&mut self) -> Step<()> {
        let value = 0xA11CE;
        self.send_control(&Control::Ping(pb::Ping { value }), 0)
            .await?;
        let frame = self.expect_frame(FrameType::Pong).await?;
        match Control::decode(FrameType::Pong, &frame.payload) {
            Some(Ok(Control::Pong(pong))) if pong.value == value => Ok(()),
            other => fail(format!("PONG {value}"), format!("{other:?}")),
        }
    }

    /// Waits for the connection to end with nothing more than what `allowed` lets through
    /// first; returns what came.
    pub async fn expect_end(&mut self, allowed: impl Fn(&Raw) -> bool) -> Step<Vec<Raw>> {
        let mut seen = Vec::new();
        loop {
            match self.next(ANSWER).await {
                Ok(Raw::Ended) => return Ok(seen),
                Ok(got) if allowed(&got) => seen.push(got),
                Ok(got) => return fail("the end of the connection", got.describe()),
                Err(_) => return fail("the end of the connection", "it stayed open"),
            }
        }
    }

    /// Waits for the implementation to close the link after a broken rule: LINK_CLOSE with
    /// `reason`, then CLOSE with the reason's number (`LINK-12`), then the end.
    pub async fn expect_link_close(&mut self, reason: LinkCloseReason) -> Step<()> {
        let frame = self.expect_frame(FrameType::LinkClose).await?;
        match Control::decode_unchecked(FrameType::LinkClose, &frame.payload) {
            Some(Ok(Control::LinkClose(close))) if close.reason() == reason => {}
            other => {
                return fail(
                    format!("LINK_CLOSE {}", reason.as_str_name()),
                    format!("{other:?}"),
                );
            }
        }
        let code = reason as u32;
        match self.next(ANSWER).await? {
            Raw::Close(got, _) if got == code => {}
            other => {
                return fail(
                    format!("CLOSE with code {code} after LINK_CLOSE (LINK-12)"),
                    other.describe(),
                );
            }
        }
        self.expect_end(|_| false).await.map(|_| ())
    }
}

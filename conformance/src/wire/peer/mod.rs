//! The suite's side of a link: a scripted peer that speaks raw frames and judges what the
//! implementation under test sends back.

use std::collections::VecDeque;
use std::time::Duration;

use acm_transport::{CloseReason, Closure, Link, TransportError};
use acm_wire::pb::{self, FrameType, LinkCloseReason, connect_response};
use acm_wire::{
    Control, ControlAssembler, DataFragment, Fragmenter, Frame, FrameKind, Limits, Reassembler,
    encode_control,
};
use bytes::Bytes;

use super::target::WireTarget;
use crate::profile::{self, Timers};
use crate::report::Verdict;

pub use super::build::*;

mod sessions;

/// A step of a case: its value, or the verdict that ends the case.
pub type Step<T> = Result<T, Verdict>;

/// How long the suite waits for an answer the implementation owes.
pub const ANSWER: Duration = Duration::from_secs(5);

/// What came from the implementation.
#[derive(Debug)]
pub enum Got {
    /// A frame (with a split control body joined: its payload is the whole body).
    Frame(Frame),
    /// The link ended.
    Ended(Closure),
}

/// A link to the implementation under test, driven frame by frame.
pub struct Peer {
    link: Box<dyn Link>,
    /// The implementation's HELLO, once received.
    pub hello: Option<pb::Hello>,
    /// The version in use.
    pub version: u8,
    /// Answer PINGs automatically while waiting for other frames.
    pub auto_pong: bool,
    assembler: ControlAssembler,
    reassembler: Reassembler,
    next_channel: u32,
    /// The largest frame the suite announced in its HELLO.
    announced_max: u32,
    suite_device: String,
    iut_device: String,
    /// The timers the implementation runs with.
    pub timers: Timers,
    /// The largest frame received so far.
    pub largest_frame: usize,
    /// Frames received while a send waited ([`Peer::say_held`]), not read yet.
    unread: VecDeque<Bytes>,
    /// When the suite last sent a frame, for its own PINGs (`LINK-6`).
    last_sent: std::sync::Mutex<tokio::time::Instant>,
    /// The suite's PINGs so far.
    pings: u64,
}

/// The keepalive interval the suite's HELLO asks for.
const SUITE_KEEPALIVE_MS: u32 = 30_000;

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// The suite's app, as PeerInfo.
pub fn suite_app(device: &str) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: device.into(),
        bundle_name: profile::BUNDLE.into(),
        module_name: profile::MODULE.into(),
        ability_name: profile::SUITE_ABILITY.into(),
        service_name: String::new(),
    }
}

impl Peer {
    /// Opens a link and sends nothing yet.
    pub async fn open(target: &dyn WireTarget) -> Step<Self> {
        let link = target
            .open()
            .await
            .map_err(|e| Verdict::fail("a link to the implementation", e.to_string()))?;
        Ok(Self::over(link, target))
    }

    /// A peer over a link opened some other way (below a segmentation, say).
    pub fn over(link: Box<dyn Link>, target: &dyn WireTarget) -> Self {
        Self {
            link,
            hello: None,
            version: 1,
            auto_pong: true,
            assembler: ControlAssembler::new(),
            reassembler: Reassembler::new(Limits::default()),
            next_channel: 1,
            announced_max: 65_535,
            suite_device: target.suite_device_id(),
            iut_device: target.device_id(),
            timers: target.timers(),
            largest_frame: 0,
            unread: VecDeque::new(),
            last_sent: std::sync::Mutex::new(tokio::time::Instant::now()),
            pings: 0,
        }
    }

    /// Opens a link and exchanges HELLOs with the suite's default HELLO.
    pub async fn up(target: &dyn WireTarget) -> Step<Self> {
        Self::up_with(target, |_| {}).await
    }

    /// Opens a link and exchanges HELLOs, after `edit` changed the suite's HELLO.
    pub async fn up_with(target: &dyn WireTarget, edit: impl FnOnce(&mut pb::Hello)) -> Step<Self> {
        let mut peer = Self::open(target).await?;
        let mut hello = peer.default_hello();
        edit(&mut hello);
        peer.announced_max = hello.max_frame_size;
        peer.send(&Control::Hello(hello), 0).await?;
        peer.expect_hello().await?;
        Ok(peer)
    }

    /// The suite's HELLO.
    pub fn default_hello(&self) -> pb::Hello {
        pb::Hello {
            min_version: 1,
            max_version: 1,
            device_id: self.suite_device.clone(),
            max_frame_size: 65_535,
            keepalive_interval_ms: SUITE_KEEPALIVE_MS,
            features: 0,
            nonce: Bytes::from_static(&[0x5A; 16]),
            max_data_size: 100 << 20,
        }
    }

    /// The link itself, for cases that send and watch it below the frames.
    pub fn link(&self) -> &dyn Link {
        &*self.link
    }

    /// The implementation's device id.
    pub fn iut_device(&self) -> &str {
        &self.iut_device
    }

    /// The suite's device id.
    pub fn suite_device(&self) -> &str {
        &self.suite_device
    }

    /// Waits for the implementation's HELLO and checks it (`LINK-1`, `LINK-3`).
    pub async fn expect_hello(&mut self) -> Step<pb::Hello> {
        let frame = match self.next(ANSWER).await? {
            Got::Frame(frame) => frame,
            Got::Ended(closure) => return fail("HELLO", format!("the link ended: {closure}")),
        };
        if frame.kind != FrameKind::Known(FrameType::Hello) {
            return fail("HELLO first (LINK-1)", describe(&frame));
        }
        if frame.encoded_len() > 128 {
            return fail(
                "a HELLO of at most 128 bytes (LINK-1)",
                format!("{} bytes", frame.encoded_len()),
            );
        }
        let hello = match Control::decode(FrameType::Hello, &frame.payload) {
            Some(Ok(Control::Hello(hello))) => hello,
            other => return fail("a valid HELLO (LINK-3)", format!("{other:?}")),
        };
        self.hello = Some(hello.clone());
        Ok(hello)
    }

    /// Sends raw bytes as one link message.
    pub async fn send_raw(&self, bytes: Bytes) -> Step<()> {
        let sent = self.link.send(bytes).await;
        self.sent_now();
        sent.map_err(|e| Verdict::fail("the link to accept the frame", e.to_string()))
    }

    /// Notes that a frame went out now.
    fn sent_now(&self) {
        *self
            .last_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tokio::time::Instant::now();
    }

    /// When the suite, playing a well-behaved peer, owes the implementation a PING (`LINK-6`):
    /// one keepalive interval of the link (the smaller of the two HELLOs') after it last sent a
    /// frame. `None` before the HELLOs, or while `auto_pong` is off (the case speaks for itself).
    fn ping_due(&self) -> Option<tokio::time::Instant> {
        let theirs = self.hello.as_ref()?.keepalive_interval_ms;
        if !self.auto_pong {
            return None;
        }
        let interval = Duration::from_millis(theirs.min(SUITE_KEEPALIVE_MS).into());
        let last = *self
            .last_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(last + interval)
    }

    /// Sends a control body on `channel`, split with MORE if the implementation's maximum frame
    /// size calls for it.
    pub async fn send(&self, control: &Control, channel: u32) -> Step<()> {
        let max = self.hello.as_ref().map_or(65_535, |h| h.max_frame_size);
        let frames = encode_control(control, self.version, channel, max)
            .map_err(|e| Verdict::fail("an encodable frame", e.to_string()))?;
        for frame in frames {
            self.send_raw(frame).await?;
        }
        Ok(())
    }

    /// The next thing from the implementation within `within`. PINGs are answered and skipped
    /// while `auto_pong` is set; PONGs are skipped.
    pub async fn next(&mut self, within: Duration) -> Step<Got> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // A peer whose frames keep coming still owes its own PINGs.
            if self
                .ping_due()
                .is_some_and(|due| due <= tokio::time::Instant::now())
            {
                self.pings += 1;
                let ping = Control::Ping(pb::Ping { value: self.pings });
                self.send(&ping, 0).await?;
            }
            let received = match self.unread.pop_front() {
                Some(bytes) => Ok(Ok(bytes)),
                None => match self.ping_due().filter(|due| *due < deadline) {
                    Some(due) => match tokio::time::timeout_at(due, self.link.recv()).await {
                        Ok(got) => Ok(got),
                        Err(_) => {
                            self.pings += 1;
                            let ping = Control::Ping(pb::Ping { value: self.pings });
                            self.send(&ping, 0).await?;
                            continue;
                        }
                    },
                    None => tokio::time::timeout_at(deadline, self.link.recv()).await,
                },
            };
            let bytes = match received {
                Err(_) => {
                    return fail(
                        format!("a frame within {within:?}"),
                        "nothing arrived".to_string(),
                    );
                }
                Ok(Err(TransportError::Closed(closure))) => return Ok(Got::Ended(closure)),
                Ok(Err(err)) => return Ok(Got::Ended(Closure::Lost(err.to_string()))),
                Ok(Ok(bytes)) => bytes,
            };
            self.largest_frame = self.largest_frame.max(bytes.len());
            if bytes.len() > self.announced_max as usize {
                return fail(
                    format!(
                        "frames of at most the {} bytes the suite announced (LINK-5)",
                        self.announced_max
                    ),
                    format!("a frame of {} bytes", bytes.len()),
                );
            }
            // Every frame after the HELLOs is in the negotiated version (FRAME-3), and none
            // begins AC 4D 00 (FRAME-3, TCP-9, BLE-8).
            let negotiated = self.hello.as_ref().map(|_| self.version);
            let frame = match Frame::decode_exact(bytes, u32::MAX, negotiated) {
                Ok(frame) => frame,
                Err(err) => {
                    return fail(
                        "well-formed frames from the implementation (FRAME-1)",
                        format!("{} ({})", err, err.rule()),
                    );
                }
            };
            let joined = match self.assembler.push(&frame) {
                Ok(joined) => joined,
                Err(err) => {
                    return fail("consecutive MORE frames (FRAME-10)", err.to_string());
                }
            };
            let frame = match (frame.kind, joined) {
                (FrameKind::Known(FrameType::Data), _) | (FrameKind::Extension(_), _) => frame,
                (_, None) => continue,
                (_, Some((_, _, body))) => Frame {
                    payload: body,
                    flags: 0,
                    ..frame
                },
            };
            if self.auto_pong && frame.kind == FrameKind::Known(FrameType::Ping) {
                if let Some(Ok(Control::Ping(ping))) =
                    Control::decode(FrameType::Ping, &frame.payload)
                {
                    self.send(&Control::Pong(pb::Pong { value: ping.value }), 0)
                        .await?;
                }
                continue;
            }
            if self.auto_pong && frame.kind == FrameKind::Known(FrameType::Pong) {
                continue;
            }
            return Ok(Got::Frame(frame));
        }
    }

    /// The next control body of type `wanted` on any channel, skipping nothing else: any other
    /// frame first is a failure.
    pub async fn expect(&mut self, wanted: FrameType, within: Duration) -> Step<(u32, Control)> {
        match self.next(within).await? {
            Got::Frame(frame) if frame.kind == FrameKind::Known(wanted) => {
                match Control::decode(wanted, &frame.payload) {
                    Some(Ok(control)) => Ok((frame.channel, control)),
                    other => fail(
                        format!("a valid {} body", wanted.as_str_name()),
                        format!("{other:?}"),
                    ),
                }
            }
            Got::Frame(frame) => fail(wanted.as_str_name(), describe(&frame)),
            Got::Ended(closure) => fail(wanted.as_str_name(), format!("the link ended: {closure}")),
        }
    }

    /// Waits for the implementation to close the link: a LINK_CLOSE, if it sends one, must carry
    /// `reason`; then the link must end.
    pub async fn expect_link_close(&mut self, reason: LinkCloseReason) -> Step<()> {
        loop {
            match self.next(ANSWER).await {
                Err(_) => {
                    return fail(
                        format!("the link closed with {}", reason.as_str_name()),
                        "the link stayed open",
                    );
                }
                Ok(Got::Ended(_)) => return Ok(()),
                Ok(Got::Frame(frame)) if frame.kind == FrameKind::Known(FrameType::LinkClose) => {
                    let close =
                        match Control::decode_unchecked(FrameType::LinkClose, &frame.payload) {
                            Some(Ok(Control::LinkClose(close))) => close,
                            other => return fail("a LINK_CLOSE body", format!("{other:?}")),
                        };
                    if close.reason() != reason {
                        return fail(
                            format!("LINK_CLOSE {}", reason.as_str_name()),
                            format!(
                                "LINK_CLOSE {} ({})",
                                close.reason().as_str_name(),
                                close.message
                            ),
                        );
                    }
                    return self.expect_end().await;
                }
                Ok(Got::Frame(_)) => {} // frames sent before the close
            }
        }
    }

    /// Waits for the link to end with nothing more from the implementation (`LINK-7`).
    pub async fn expect_end(&mut self) -> Step<()> {
        match self.next(ANSWER).await {
            Ok(Got::Ended(_)) => Ok(()),
            Ok(Got::Frame(frame)) => fail("nothing after LINK_CLOSE (LINK-7)", describe(&frame)),
            Err(_) => fail(
                "the link to end after LINK_CLOSE (LINK-7)",
                "it stayed open",
            ),
        }
    }

    /// Checks that the link is still up and quiet: a PING is answered by a PONG with its value,
    /// and nothing else comes first.
    pub async fn expect_alive(&mut self) -> Step<()> {
        let value = 0xC0FFEE;
        self.send(&Control::Ping(pb::Ping { value }), 0).await?;
        self.auto_pong = false;
        let answer = loop {
            match self.next(ANSWER).await {
                Ok(Got::Frame(frame)) if frame.kind == FrameKind::Known(FrameType::Pong) => {
                    break Control::decode(FrameType::Pong, &frame.payload);
                }
                Ok(Got::Frame(frame)) if frame.kind == FrameKind::Known(FrameType::Ping) => {}
                Ok(Got::Frame(frame)) => {
                    self.auto_pong = true;
                    return fail("the link to stay up and nothing but PONG", describe(&frame));
                }
                Ok(Got::Ended(closure)) => {
                    self.auto_pong = true;
                    return fail("the link to stay up", format!("it ended: {closure}"));
                }
                Err(verdict) => {
                    self.auto_pong = true;
                    return Err(verdict);
                }
            }
        };
        self.auto_pong = true;
        match answer {
            Some(Ok(Control::Pong(pong))) if pong.value == value => Ok(()),
            other => fail(format!("PONG {value}"), format!("{other:?}")),
        }
    }

    /// Closes the suite's end of the link.
    pub async fn close(self) {
        self.link.close(CloseReason::normal()).await;
    }
}

/// One line about a frame, for verdicts.
pub fn describe(frame: &Frame) -> String {
    let name = match frame.kind {
        FrameKind::Known(t) => t.as_str_name().to_string(),
        FrameKind::Extension(code) => format!("extension {code:#04x}"),
    };
    let mut text = format!(
        "{name} on channel {} ({} bytes)",
        frame.channel,
        frame.payload.len()
    );
    if let FrameKind::Known(t) = frame.kind
        && let Some(Ok(control)) = Control::decode_unchecked(t, &frame.payload)
    {
        let body = format!("{control:?}");
        text.push_str(": ");
        text.push_str(&body.chars().take(200).collect::<String>());
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! Checks on every frame an engine hands out: the header rules, the size the peer accepts,
//! the order of a link's and a session's frames, split bodies, and that bodies and transfers
//! carry exactly what the app asked for.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use acm_wire::pb::{self, FrameType, connect_response};
use acm_wire::{Control, ControlAssembler, DataFragment, FLAG_MORE, Frame, FrameKind};
use bytes::Bytes;

/// A transfer being sent: its length, the next index due and the bytes so far.
type Outgoing = (u64, u32, Vec<u8>);

/// What an engine has sent so far.
#[derive(Debug, Default)]
pub(super) struct Sent {
    pub(super) frames: u64,
    link_close: bool,
    assembler: ControlAssembler,
    /// Channels on which a request went out.
    requested: BTreeSet<u32>,
    /// Channels on which a response went out.
    answered: BTreeSet<u32>,
    /// Channels on which nothing more may go: after DISCONNECT or a rejection.
    ended: BTreeSet<u32>,
    /// The bodies the app asked for, per channel, in order.
    pub(super) expected: BTreeMap<u32, VecDeque<Control>>,
    /// The data of every transfer queued and not yet wholly sent.
    pub(super) data: HashMap<(u32, u32), Bytes>,
    transfers: HashMap<(u32, u32), Outgoing>,
    /// Transfers whose last fragment went out in the current step.
    pub(super) finished: Vec<(u32, u32)>,
}

/// What the checks need to know of the engine's side of the link.
pub(super) struct Context<'a> {
    pub(super) name: &'a str,
    /// The largest frame the engine may send now.
    pub(super) max_frame: u32,
    pub(super) version: Option<u8>,
    pub(super) up: bool,
    pub(super) local_device: &'a str,
    /// Whether the channel is one the engine opened.
    pub(super) is_local: &'a dyn Fn(u32) -> bool,
    /// Whether the channel's session has been connected.
    pub(super) connected: &'a dyn Fn(u32) -> bool,
    /// The token of the session on the channel, if it was one.
    pub(super) token: &'a dyn Fn(u32) -> Option<[u8; 16]>,
}

impl Sent {
    /// Checks one frame; returns the control body it completes, with its channel.
    pub(super) fn frame(&mut self, bytes: &Bytes, cx: &Context<'_>) -> Option<(u32, Control)> {
        let name = cx.name;
        assert!(
            !self.link_close,
            "{name}: a frame after LINK_CLOSE (LINK-7)"
        );
        let frame = Frame::decode_exact(bytes.clone(), cx.max_frame, cx.version)
            .unwrap_or_else(|e| panic!("{name}: sent a bad frame ({e}): {bytes:02x?}"));
        assert_eq!(frame.version, 1, "{name}: version");
        let FrameKind::Known(frame_type) = frame.kind else {
            panic!("{name}: sent an extension frame");
        };
        if self.frames == 0 {
            assert_eq!(frame_type, FrameType::Hello, "{name}: first frame (LINK-1)");
            assert!(bytes.len() <= 128, "{name}: HELLO over 128 bytes (LINK-1)");
        } else {
            assert_ne!(frame_type, FrameType::Hello, "{name}: a second HELLO");
        }
        self.frames += 1;
        if !matches!(frame_type, FrameType::Hello | FrameType::LinkClose) {
            assert!(
                cx.up,
                "{name}: {frame_type:?} before the peer's HELLO (LINK-2)"
            );
        }
        let channel = frame.channel;
        if channel != 0 {
            assert!(
                !self.ended.contains(&channel),
                "{name}: {frame_type:?} on channel {channel} after it ended (DISC-2)"
            );
        }
        if frame_type != FrameType::Data && frame.flags & FLAG_MORE != 0 {
            assert_eq!(
                bytes.len(),
                cx.max_frame as usize,
                "{name}: a split body's piece is not as large as the frame allows (FRAME-10)"
            );
        }
        if frame_type == FrameType::Data {
            assert!((cx.connected)(channel), "{name}: DATA unconnected (SESS-6)");
            self.fragment(&frame, name);
            return None;
        }
        let (frame_type, channel, body) = self
            .assembler
            .push(&frame)
            .unwrap_or_else(|e| panic!("{name}: split body broken ({e}) (FRAME-10)"))?;
        let control = match Control::decode(frame_type, &body) {
            Some(Ok(control)) => control,
            other => panic!("{name}: sent an invalid {frame_type:?} body: {other:?}"),
        };
        self.body(channel, &control, cx);
        Some((channel, control))
    }

    fn body(&mut self, channel: u32, control: &Control, cx: &Context<'_>) {
        let name = cx.name;
        let expected = self
            .expected
            .get_mut(&channel)
            .filter(|queue| queue.front() == Some(control))
            .and_then(VecDeque::pop_front);
        match control {
            Control::Hello(hello) => {
                assert_eq!(hello.device_id, cx.local_device, "{name}: HELLO device");
            }
            Control::LinkClose(_) => self.link_close = true,
            Control::Ping(_) | Control::Pong(_) => {}
            Control::ConnectRequest(_) => {
                assert!(expected.is_some(), "{name}: a request the app did not make");
                assert!((cx.is_local)(channel), "{name}: request on a peer channel");
                assert!(self.requested.insert(channel), "{name}: a second request");
            }
            Control::ConnectResponse(response) => {
                assert!(
                    !(cx.is_local)(channel),
                    "{name}: response on its own channel"
                );
                assert!(self.answered.insert(channel), "{name}: a second response");
                match &response.result {
                    Some(connect_response::Result::Accepted(_)) => {
                        assert!(expected.is_some(), "{name}: accepted without the app");
                        let token = (cx.token)(channel).map(|t| t.to_vec());
                        assert_eq!(Some(response.token.to_vec()), token, "{name}: token");
                    }
                    _ => {
                        self.ended.insert(channel);
                    }
                }
            }
            Control::Disconnect(disconnect) => {
                let failure = disconnect.reason == pb::DisconnectReason::NetworkDisconnected as i32
                    && disconnect.error != pb::SessionError::None as i32;
                assert!(
                    expected.is_some() || failure,
                    "{name}: a DISCONNECT neither the app nor a failure asked for: {disconnect:?}"
                );
                self.ended.insert(channel);
            }
            Control::Message(_) | Control::CollaborateEvent(_) => {
                assert!(
                    expected.is_some(),
                    "{name}: {control:?} on {channel} is not the next the app sent"
                );
                assert!((cx.connected)(channel), "{name}: unconnected (SESS-6)");
            }
        }
    }

    fn fragment(&mut self, frame: &Frame, name: &str) {
        let fragment = DataFragment::parse(frame)
            .unwrap_or_else(|e| panic!("{name}: sent a bad DATA payload: {e}"));
        let key = (fragment.channel, fragment.transfer_id);
        let (total, next, mut bytes) = match fragment.total_length {
            Some(total) => {
                assert_eq!(fragment.index, 0, "{name}: FIRST index (DATA-2)");
                assert!(
                    !self.transfers.contains_key(&key),
                    "{name}: FIRST again for {key:?} (DATA-3)"
                );
                (total, 0, Vec::new())
            }
            None => self
                .transfers
                .remove(&key)
                .unwrap_or_else(|| panic!("{name}: fragment of no transfer {key:?} (DATA-4)")),
        };
        assert_eq!(fragment.index, next, "{name}: fragment order (DATA-4)");
        bytes.extend_from_slice(&fragment.chunk);
        if !fragment.last {
            assert!(
                !fragment.chunk.is_empty(),
                "{name}: empty fragment (DATA-4)"
            );
            self.transfers
                .insert(key, (total, next.saturating_add(1), bytes));
            return;
        }
        assert_eq!(
            bytes.len() as u64,
            total,
            "{name}: transfer length (DATA-5)"
        );
        let data = self
            .data
            .remove(&key)
            .unwrap_or_else(|| panic!("{name}: a transfer the app did not send {key:?}"));
        assert!(
            data == bytes,
            "{name}: transfer {key:?} is not the app's bytes"
        );
        self.finished.push(key);
    }
}

//! The scripted peer: frames built from the input, valid ones (HELLO, requests, answers,
//! messages, transfers...) from a few input fields, and invalid ones (arbitrary bytes, mutated
//! frames, broken split bodies, stray fragments). It learns the engine's frame size, channels
//! and tokens from what the engine sends, so that its answers can be right.

use std::collections::{BTreeMap, VecDeque};

use crate::Input;
use acm_transport::Role;
use acm_wire::pb::{self, FrameType};
use acm_wire::{
    Control, DataFragment, FLAG_FIRST, FLAG_LAST, Fragmenter, Frame, FrameKind, MIN_FRAME_SIZE,
    encode_control,
};
use bytes::{Bytes, BytesMut};

use super::args;

/// The peer's operations, by their number in the operation byte (fuzz/README.md).
pub(super) const HELLO: u8 = 0;
pub(super) const REQUEST: u8 = 1;
pub(super) const RESPONSE: u8 = 2;
pub(super) const MESSAGE: u8 = 3;
pub(super) const TRANSFER: u8 = 4;
pub(super) const FRAGMENT: u8 = 5;
pub(super) const DISCONNECT: u8 = 6;
pub(super) const EVENT: u8 = 7;
pub(super) const PING: u8 = 8;
pub(super) const PONG: u8 = 9;
pub(super) const LINK_CLOSE: u8 = 10;
pub(super) const RAW: u8 = 11;
pub(super) const MUTATE: u8 = 12;
pub(super) const EXTENSION: u8 = 13;
pub(super) const ECHO: u8 = 14;
pub(super) const CONTINUE: u8 = 15;

/// Bits of the operation byte above the operation, for the control bodies: the body is input
/// bytes rather than a protobuf message; only the first frame of a split body goes; the body is
/// split for 128-byte frames whatever the engine accepts.
pub(super) const RAW_BODY: u8 = 0x20;
pub(super) const FIRST_PIECE: u8 = 0x40;
pub(super) const SMALL_FRAMES: u8 = 0x80;

#[derive(Debug)]
pub(super) struct Peer {
    pub(super) device: String,
    engine_device: String,
    role: Role,
    /// The largest frame the engine accepts, from its HELLO.
    engine_max_frame: u32,
    highest: u32,
    /// The engine's requests: channel and token.
    requests: BTreeMap<u32, Vec<u8>>,
    opened: Vec<u32>,
    transfers: BTreeMap<u32, u32>,
    /// The fragments of transfers not sent yet.
    pending: VecDeque<VecDeque<Bytes>>,
    last: Option<Bytes>,
    /// The engine's latest frames, to send back to it.
    echoes: VecDeque<Bytes>,
}

impl Peer {
    pub(super) fn new(role: Role, device: &str, engine_device: &str) -> Self {
        Self {
            device: device.into(),
            engine_device: engine_device.into(),
            role,
            engine_max_frame: MIN_FRAME_SIZE,
            highest: 0,
            requests: BTreeMap::new(),
            opened: Vec::new(),
            transfers: BTreeMap::new(),
            pending: VecDeque::new(),
            last: None,
            echoes: VecDeque::new(),
        }
    }

    /// Learns from a frame the engine sent and the control body it completed.
    pub(super) fn learn(&mut self, frame: &Bytes, body: Option<&(u32, Control)>) {
        if self.echoes.len() == 8 {
            self.echoes.pop_front();
        }
        self.echoes.push_back(frame.clone());
        match body {
            Some((_, Control::Hello(hello))) => self.engine_max_frame = hello.max_frame_size,
            Some((channel, Control::ConnectRequest(request))) => {
                self.requests.insert(*channel, request.token.to_vec());
            }
            _ => {}
        }
    }

    fn known(&self) -> Vec<u32> {
        let mut known: Vec<u32> = self.requests.keys().copied().collect();
        known.extend(&self.opened);
        known
    }

    /// The frames of operation `op` (0 to 15), with `flags` its upper bits.
    pub(super) fn frames(&mut self, op: u8, flags: u8, input: &mut Input<'_>) -> Vec<Bytes> {
        let frames = match op {
            HELLO => vec![self.hello(input)],
            PING | PONG => {
                let value = input.varint();
                let control = if op == PING {
                    Control::Ping(pb::Ping { value })
                } else {
                    Control::Pong(pb::Pong { value })
                };
                vec![encode(&control, 0)]
            }
            LINK_CLOSE => {
                let reason = i32::from(input.byte() % 9);
                let message = args::text(input);
                vec![encode(
                    &Control::LinkClose(pb::LinkClose { reason, message }),
                    0,
                )]
            }
            RAW => {
                let len = usize::try_from(input.varint().min(70_000)).unwrap_or(0);
                vec![Bytes::copy_from_slice(input.bytes(len))]
            }
            MUTATE => self.mutated(input).into_iter().collect(),
            EXTENSION => {
                let mut frame = Frame::new(1, FrameType::Hello, 0, Bytes::new());
                frame.kind = FrameKind::Extension(0x80 | input.byte());
                frame.version = input.byte() % 3;
                frame.channel = args::channel(input, &self.known());
                frame.payload = args::chunk(input);
                frame.to_bytes().into_iter().collect()
            }
            ECHO => {
                let n = self.echoes.len().max(1);
                let pick = usize::from(input.byte()) % n;
                self.echoes.get(pick).cloned().into_iter().collect()
            }
            TRANSFER => self.transfer(input),
            FRAGMENT => self.fragment(input),
            CONTINUE => {
                let n = self.pending.len().max(1);
                let pick = usize::from(input.byte()) % n;
                let count = usize::from(input.byte() % 8) + 1;
                let Some(fragments) = self.pending.get_mut(pick) else {
                    return Vec::new();
                };
                let sent: Vec<Bytes> = fragments.drain(..count.min(fragments.len())).collect();
                self.pending.retain(|f| !f.is_empty());
                sent
            }
            _ => self.session_frames(op, flags, input),
        };
        if let Some(last) = frames.last() {
            self.last = Some(last.clone());
        }
        frames
    }

    /// A HELLO: two selector bytes (fuzz/README.md).
    fn hello(&mut self, input: &mut Input<'_>) -> Bytes {
        let (a, b) = (input.byte(), input.byte());
        let pick = |shift: u8| usize::from((a >> shift) & 3);
        let (min_version, max_version) = [(1, 1), (1, 3), (2, 4), (0, 1)][pick(0)];
        let device = [self.device.as_str(), self.device.as_str(), "watch", ""][pick(2)];
        let hello = pb::Hello {
            min_version,
            max_version,
            device_id: device.into(),
            max_frame_size: [65_535, 128, 127, 300][pick(4)],
            keepalive_interval_ms: [15_000, 1_000, 999, 600_000][pick(6)],
            features: u64::from(b >> 7) << 5,
            nonce: Bytes::from(vec![7; 15 + usize::from((b >> 2) & 1 == 0)]),
            max_data_size: [100 << 20, 64, 0, 1][usize::from(b & 3)],
        };
        encode(&Control::Hello(hello), 0)
    }

    /// CONNECT_REQUEST, CONNECT_RESPONSE, MESSAGE, DISCONNECT and COLLABORATE_EVENT.
    fn session_frames(&mut self, op: u8, flags: u8, input: &mut Input<'_>) -> Vec<Bytes> {
        let channel = if op == REQUEST {
            self.request_channel(input)
        } else {
            args::channel(input, &self.known())
        };
        let frame_type = match op {
            REQUEST => FrameType::ConnectRequest,
            RESPONSE => FrameType::ConnectResponse,
            MESSAGE => FrameType::Message,
            DISCONNECT => FrameType::Disconnect,
            _ => FrameType::CollaborateEvent,
        };
        if flags & RAW_BODY != 0 {
            let frame = Frame::new(1, frame_type, channel, args::chunk(input));
            return frame.to_bytes().into_iter().collect();
        }
        let control = match frame_type {
            FrameType::ConnectRequest => {
                let request = args::request(input, &self.device, &self.engine_device, true);
                Control::ConnectRequest(pb::ConnectRequest {
                    token: Bytes::copy_from_slice(&request.token),
                    source: Some(request.source),
                    target: Some(request.target),
                    options: Some(request.options),
                })
            }
            FrameType::ConnectResponse => self.response(channel, input),
            FrameType::Message => Control::Message(pb::Message {
                text: args::text(input),
            }),
            FrameType::Disconnect => Control::Disconnect(pb::Disconnect {
                reason: i32::from(input.byte() % 5),
                error: i32::from(input.byte() % 8),
                detail: args::text(input),
            }),
            _ => Control::CollaborateEvent(pb::CollaborateEvent {
                event_type: i32::from(input.byte() % 4),
                message: args::text(input),
            }),
        };
        let max_frame = if flags & SMALL_FRAMES != 0 {
            MIN_FRAME_SIZE
        } else {
            self.engine_max_frame
        };
        let mut frames = encode_control(&control, 1, channel, max_frame).unwrap_or_default();
        if flags & FIRST_PIECE != 0 {
            frames.truncate(1);
        }
        frames
    }

    /// A channel for a request: a selector byte. 0x00-0x7F: the next one the peer may open;
    /// 0x80-0xBF: its last one again; 0xC0-0xFF: the low six bits.
    fn request_channel(&mut self, input: &mut Input<'_>) -> u32 {
        let selector = input.byte();
        let channel = match selector >> 6 {
            0 | 1 => match (self.highest, self.role) {
                (0, Role::Dialer) => 1,
                (0, Role::Acceptor) => 2,
                (highest, _) => highest.saturating_add(2),
            },
            2 => self.highest,
            _ => u32::from(selector & 0x3F),
        };
        if channel > self.highest && (channel % 2 == 1) == (self.role == Role::Dialer) {
            self.highest = channel;
            self.opened.push(channel);
        }
        channel
    }

    /// A response: a selector byte. Bits 0-1: accepted, rejected, no result, accepted with
    /// another token; bits 2-4: the rejection's code.
    fn response(&mut self, channel: u32, input: &mut Input<'_>) -> Control {
        let selector = input.byte();
        let mut token = self.requests.get(&channel).cloned().unwrap_or_default();
        let result = match selector & 3 {
            0 => Some(pb::connect_response::Result::Accepted(pb::Accepted {})),
            1 => Some(pb::connect_response::Result::Rejected(pb::Rejected {
                code: i32::from((selector >> 2) & 7),
                reason: args::text(input),
            })),
            2 => None,
            _ => {
                token = vec![selector; 16];
                Some(pb::connect_response::Result::Accepted(pb::Accepted {}))
            }
        };
        Control::ConnectResponse(pb::ConnectResponse {
            token: token.into(),
            result,
        })
    }

    /// A whole transfer, cut as a sender would: channel, transfer id selector (0x00-0x7F the
    /// next, 0x80-0xBF the last again, 0xC0-0xFF a varint), length, fill byte, frame size
    /// selector, and how many fragments go now (the rest wait for [`CONTINUE`]).
    fn transfer(&mut self, input: &mut Input<'_>) -> Vec<Bytes> {
        let channel = args::channel(input, &self.known());
        let selector = input.byte();
        let last = self.transfers.get(&channel).copied().unwrap_or(0);
        let transfer_id = match selector >> 6 {
            0 | 1 => last.saturating_add(1),
            2 => last,
            _ => u32::try_from(input.varint() & u64::from(u32::MAX)).unwrap_or(0),
        };
        self.transfers.insert(channel, transfer_id.max(last));
        let data = args::data(args::data_len(input, 5_000), input.byte());
        let frame_size = [self.engine_max_frame, 128, 29, 40][usize::from(input.byte() & 3)];
        let now = usize::from(input.byte());
        let Ok(fragments) = Fragmenter::new(1, channel, transfer_id, data, frame_size) else {
            return Vec::new();
        };
        let mut fragments: VecDeque<Bytes> = fragments.collect();
        let sent = fragments.drain(..now.min(fragments.len())).collect();
        if !fragments.is_empty() {
            self.pending.push_back(fragments);
        }
        sent
    }

    /// One DATA fragment from raw fields: channel, flags (bit 0 FIRST, bit 1 LAST), transfer
    /// id, index, total length (FIRST only) as varints, a length byte and the chunk.
    fn fragment(&mut self, input: &mut Input<'_>) -> Vec<Bytes> {
        let channel = args::channel(input, &self.known());
        let flags = input.byte();
        let transfer_id = u32::try_from(input.varint() & u64::from(u32::MAX)).unwrap_or(0);
        let index = u32::try_from(input.varint() & u64::from(u32::MAX)).unwrap_or(0);
        let total_length = (flags & FLAG_FIRST != 0).then(|| input.varint());
        let chunk = args::chunk(input);
        let fragment = DataFragment {
            channel,
            transfer_id,
            index,
            total_length,
            last: flags & FLAG_LAST != 0,
            chunk,
        };
        let mut frame = BytesMut::new();
        match fragment.encode(1, &mut frame) {
            Ok(()) => vec![frame.freeze()],
            Err(_) => Vec::new(),
        }
    }

    /// The peer's last frame, changed: a selector byte, then its arguments. 0: one byte XORed
    /// (position, value); 1: cut short by a byte's count; 2: bytes appended; 3: a header byte
    /// (position 2-11) set.
    fn mutated(&mut self, input: &mut Input<'_>) -> Option<Bytes> {
        let mut frame = self.last.as_ref()?.to_vec();
        match input.byte() & 3 {
            0 => {
                let at = usize::from(input.byte()) % frame.len().max(1);
                let xor = input.byte();
                if let Some(b) = frame.get_mut(at) {
                    *b ^= xor.max(1);
                }
            }
            1 => frame.truncate(frame.len().saturating_sub(usize::from(input.byte()) + 1)),
            2 => frame.extend_from_slice(&args::chunk(input)),
            _ => {
                let at = 2 + usize::from(input.byte()) % 10;
                let value = input.byte();
                if let Some(b) = frame.get_mut(at) {
                    *b = value;
                }
            }
        }
        Some(frame.into())
    }
}

fn encode(control: &Control, channel: u32) -> Bytes {
    control.encode_frame(1, channel).unwrap_or_default()
}

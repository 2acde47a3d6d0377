//! What the frames handed to an engine carry, read independently of the engine: the shadow
//! joins split control bodies and DATA fragments itself, so that what the engine delivers can be
//! compared with what was on the wire.

use std::collections::HashMap;

use acm_wire::pb::{self, FrameType};
use acm_wire::{Control, ControlAssembler, DataFragment, Frame, FrameKind};
use bytes::Bytes;

/// What one frame completed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arrival {
    /// Nothing the engine may act on: a piece of a split body, an extension frame, bytes that
    /// are no frame, or a body that does not decode.
    Nothing,
    Hello(pb::Hello),
    LinkClose,
    Request {
        channel: u32,
        request: Box<pb::ConnectRequest>,
    },
    Response {
        channel: u32,
        response: pb::ConnectResponse,
    },
    Message {
        channel: u32,
        text: String,
    },
    Event {
        channel: u32,
        event: pb::CollaborateEvent,
    },
    Disconnect {
        channel: u32,
        disconnect: pb::Disconnect,
    },
    /// A DATA fragment; `whole` holds the transfer's bytes when it is the LAST fragment of a
    /// transfer whose fragments all came, in order, since its FIRST.
    Data {
        channel: u32,
        whole: Option<Vec<u8>>,
    },
    /// PING, PONG.
    Link,
}

/// A transfer as the fragments so far make it: `None` once they broke the order.
type Progress = Option<(u64, u32, Vec<u8>)>;

#[derive(Debug, Default)]
pub(super) struct Shadow {
    assembler: ControlAssembler,
    transfers: HashMap<(u32, u32), Progress>,
}

impl Shadow {
    /// Reads the next frame handed to an engine that accepts frames of `max_frame` bytes and
    /// has negotiated `version`.
    pub(super) fn feed(&mut self, message: &Bytes, max_frame: u32, version: Option<u8>) -> Arrival {
        let Ok(frame) = Frame::decode_exact(message.clone(), max_frame, version) else {
            return Arrival::Nothing;
        };
        let assembled = match self.assembler.push(&frame) {
            Ok(assembled) => assembled,
            Err(_) => {
                self.assembler = ControlAssembler::new();
                return Arrival::Nothing;
            }
        };
        match (frame.kind, assembled) {
            (FrameKind::Known(FrameType::Data), _) => self.data(&frame),
            (_, Some((frame_type, channel, body))) => control(frame_type, channel, &body),
            _ => Arrival::Nothing,
        }
    }

    fn data(&mut self, frame: &Frame) -> Arrival {
        let channel = frame.channel;
        let Ok(fragment) = DataFragment::parse(frame) else {
            return Arrival::Data {
                channel,
                whole: None,
            };
        };
        let key = (channel, fragment.transfer_id);
        let progress = match fragment.total_length {
            Some(total) => (fragment.index == 0).then(|| (total, 0, Vec::new())),
            None => self.transfers.remove(&key).flatten(),
        };
        let progress = progress.and_then(|(total, next, mut bytes)| {
            if fragment.index != next {
                return None;
            }
            bytes.extend_from_slice(&fragment.chunk);
            Some((total, next.checked_add(1)?, bytes))
        });
        if !fragment.last {
            self.transfers.insert(key, progress);
            return Arrival::Data {
                channel,
                whole: None,
            };
        }
        self.transfers.remove(&key);
        let whole = progress
            .filter(|(total, _, bytes)| *total == bytes.len() as u64)
            .map(|(_, _, bytes)| bytes);
        Arrival::Data { channel, whole }
    }
}

fn control(frame_type: FrameType, channel: u32, body: &[u8]) -> Arrival {
    let Some(Ok(control)) = Control::decode_unchecked(frame_type, body) else {
        return Arrival::Nothing;
    };
    match control {
        Control::Hello(hello) => Arrival::Hello(hello),
        Control::LinkClose(_) => Arrival::LinkClose,
        Control::Ping(_) | Control::Pong(_) => Arrival::Link,
        Control::ConnectRequest(request) => Arrival::Request {
            channel,
            request: Box::new(request),
        },
        Control::ConnectResponse(response) => Arrival::Response { channel, response },
        Control::Message(message) => Arrival::Message {
            channel,
            text: message.text,
        },
        Control::CollaborateEvent(event) => Arrival::Event { channel, event },
        Control::Disconnect(disconnect) => Arrival::Disconnect {
            channel,
            disconnect,
        },
    }
}

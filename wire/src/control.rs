//! Control frames: decoding each body from its frame and checking its contents (SPEC sections 4,
//! 5 and 7).

use bytes::{Bytes, BytesMut};
use prost::Message as _;

use crate::error::{ControlError, EncodeError};
use crate::frame::Frame;
use crate::limits::{
    MAX_DEVICE_ID_LEN, MAX_KEEPALIVE_MS, MAX_MESSAGE_LEN, MAX_NAME_LEN, MAX_PARAMETERS,
    MAX_SERVICE_NAME_LEN, MAX_TEXT_LEN, MIN_FRAME_SIZE, MIN_KEEPALIVE_MS, NONCE_LEN, TOKEN_LEN,
};
use crate::pb;
use crate::pb::FrameType;

/// The body of a control frame, decoded and checked. Deliberately exhaustive: a new frame type
/// is a change of the protocol that every reader of control bodies must see (frame types this
/// version does not know are extensions, `FrameKind::Extension`, and have no body here).
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived values, moved once
pub enum Control {
    /// FRAME_TYPE_HELLO.
    Hello(pb::Hello),
    /// FRAME_TYPE_LINK_CLOSE.
    LinkClose(pb::LinkClose),
    /// FRAME_TYPE_PING.
    Ping(pb::Ping),
    /// FRAME_TYPE_PONG.
    Pong(pb::Pong),
    /// FRAME_TYPE_CONNECT_REQUEST.
    ConnectRequest(pb::ConnectRequest),
    /// FRAME_TYPE_CONNECT_RESPONSE.
    ConnectResponse(pb::ConnectResponse),
    /// FRAME_TYPE_MESSAGE.
    Message(pb::Message),
    /// FRAME_TYPE_DISCONNECT.
    Disconnect(pb::Disconnect),
    /// FRAME_TYPE_COLLABORATE_EVENT.
    CollaborateEvent(pb::CollaborateEvent),
}

impl Control {
    /// The frame type that carries this body.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Hello(_) => FrameType::Hello,
            Self::LinkClose(_) => FrameType::LinkClose,
            Self::Ping(_) => FrameType::Ping,
            Self::Pong(_) => FrameType::Pong,
            Self::ConnectRequest(_) => FrameType::ConnectRequest,
            Self::ConnectResponse(_) => FrameType::ConnectResponse,
            Self::Message(_) => FrameType::Message,
            Self::Disconnect(_) => FrameType::Disconnect,
            Self::CollaborateEvent(_) => FrameType::CollaborateEvent,
        }
    }

    /// The body's protobuf encoding.
    pub fn encode_body(&self) -> Bytes {
        let mut body = BytesMut::with_capacity(self.encoded_len());
        self.encode_body_into(&mut body);
        body.freeze()
    }

    /// The length of the body's protobuf encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Hello(m) => m.encoded_len(),
            Self::LinkClose(m) => m.encoded_len(),
            Self::Ping(m) => m.encoded_len(),
            Self::Pong(m) => m.encoded_len(),
            Self::ConnectRequest(m) => m.encoded_len(),
            Self::ConnectResponse(m) => m.encoded_len(),
            Self::Message(m) => m.encoded_len(),
            Self::Disconnect(m) => m.encoded_len(),
            Self::CollaborateEvent(m) => m.encoded_len(),
        }
    }

    /// Appends the body's protobuf encoding to `dst`, which grows as needed.
    pub fn encode_body_into(&self, dst: &mut BytesMut) {
        // `encode_raw` writes the fields without working out the length first, as `encode`
        // would: callers have it already from `encoded_len`, and a BytesMut never runs out of
        // room, which is all `encode` checks.
        match self {
            Self::Hello(m) => m.encode_raw(dst),
            Self::LinkClose(m) => m.encode_raw(dst),
            Self::Ping(m) => m.encode_raw(dst),
            Self::Pong(m) => m.encode_raw(dst),
            Self::ConnectRequest(m) => m.encode_raw(dst),
            Self::ConnectResponse(m) => m.encode_raw(dst),
            Self::Message(m) => m.encode_raw(dst),
            Self::Disconnect(m) => m.encode_raw(dst),
            Self::CollaborateEvent(m) => m.encode_raw(dst),
        }
    }

    /// The frame that carries this body on `channel`. Link bodies (Hello, LinkClose, Ping, Pong)
    /// belong on channel 0, session bodies on the session's channel.
    pub fn to_frame(&self, version: u8, channel: u32) -> Frame {
        Frame::new(version, self.frame_type(), channel, self.encode_body())
    }

    /// The encoded frame that carries this body, ready to send.
    pub fn encode_frame(&self, version: u8, channel: u32) -> Result<Bytes, EncodeError> {
        self.to_frame(version, channel).to_bytes()
    }

    /// Decodes and checks the body of a control frame of type `frame_type`. Returns `None` for
    /// `FRAME_TYPE_DATA` and `FRAME_TYPE_UNSPECIFIED`, which have no protobuf body.
    #[inline]
    pub fn decode(frame_type: FrameType, body: &[u8]) -> Option<Result<Self, ControlError>> {
        Self::decode_unchecked(frame_type, body)
            .map(|decoded| decoded.and_then(|control| control.validate().map(|()| control)))
    }

    /// Decodes the body of a control frame without checking its contents: for receivers that
    /// act on a frame even when a field breaks a rule (SPEC `CTRL-3`). Call
    /// [`Control::validate`] to learn what is wrong with it.
    #[inline]
    pub fn decode_unchecked(
        frame_type: FrameType,
        body: &[u8],
    ) -> Option<Result<Self, ControlError>> {
        fn parse<M: prost::Message + Default>(
            name: &'static str,
            body: &[u8],
        ) -> Result<M, ControlError> {
            M::decode(body).map_err(|err| ControlError::Decode {
                message: name,
                detail: err.to_string(),
            })
        }
        let decoded = match frame_type {
            FrameType::Unspecified | FrameType::Data => return None,
            FrameType::Hello => parse("Hello", body).map(Self::Hello),
            FrameType::LinkClose => parse("LinkClose", body).map(Self::LinkClose),
            FrameType::Ping => parse("Ping", body).map(Self::Ping),
            FrameType::Pong => parse("Pong", body).map(Self::Pong),
            FrameType::ConnectRequest => parse("ConnectRequest", body).map(Self::ConnectRequest),
            FrameType::ConnectResponse => parse("ConnectResponse", body).map(Self::ConnectResponse),
            FrameType::Message => parse("Message", body).map(Self::Message),
            FrameType::Disconnect => parse("Disconnect", body).map(Self::Disconnect),
            FrameType::CollaborateEvent => {
                parse("CollaborateEvent", body).map(Self::CollaborateEvent)
            }
        };
        Some(decoded)
    }

    /// Checks the body's contents against SPEC.md. Unknown enum values pass (SPEC `CTRL-3`
    /// says how each is read); UNSPECIFIED zeros in required fields do not.
    pub fn validate(&self) -> Result<(), ControlError> {
        match self {
            Self::Hello(m) => validate_hello(m),
            Self::LinkClose(m) => {
                required_enum("LinkClose.reason", m.reason)?;
                max_len("LinkClose.message", &m.message, MAX_TEXT_LEN)
            }
            Self::Ping(_) | Self::Pong(_) => Ok(()),
            Self::ConnectRequest(m) => validate_connect_request(m),
            Self::ConnectResponse(m) => validate_connect_response(m),
            Self::Message(m) => max_len("Message.text", &m.text, MAX_MESSAGE_LEN),
            Self::Disconnect(m) => {
                required_enum("Disconnect.reason", m.reason)?;
                max_len("Disconnect.detail", &m.detail, MAX_TEXT_LEN)
            }
            Self::CollaborateEvent(m) => {
                required_enum("CollaborateEvent.event_type", m.event_type)?;
                max_len("CollaborateEvent.message", &m.message, MAX_TEXT_LEN)
            }
        }
    }
}

fn required_enum(field: &'static str, value: i32) -> Result<(), ControlError> {
    if value == 0 {
        return Err(ControlError::Unspecified { field });
    }
    Ok(())
}

fn max_len(field: &'static str, text: &str, max: usize) -> Result<(), ControlError> {
    if text.len() > max {
        return Err(ControlError::TooLong {
            field,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

/// A name: non-empty, at most `max` bytes, no control characters.
fn name(field: &'static str, text: &str, max: usize) -> Result<(), ControlError> {
    if text.is_empty() {
        return Err(ControlError::Empty { field });
    }
    max_len(field, text, max)?;
    if has_control_character(text) {
        return Err(ControlError::ControlCharacter { field });
    }
    Ok(())
}

/// Whether `text` holds a control character (`char::is_control`), which names may not (SPEC
/// section 5). Printable ASCII, the usual case, is told in one pass over the bytes; anything
/// else is looked at a character at a time.
pub fn has_control_character(text: &str) -> bool {
    // Every byte looked at, without stopping at the first odd one: a loop the compiler turns
    // into vector instructions.
    let beyond_printable_ascii = text
        .bytes()
        .fold(false, |seen, b| seen | !(0x20..0x7F).contains(&b));
    beyond_printable_ascii && text.chars().any(char::is_control)
}

fn in_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ControlError> {
    if !(min..=max).contains(&value) {
        return Err(ControlError::OutOfRange {
            field,
            value,
            min,
            max,
        });
    }
    Ok(())
}

fn exact_len(field: &'static str, bytes: &[u8], expected: usize) -> Result<(), ControlError> {
    if bytes.len() != expected {
        return Err(ControlError::WrongLength {
            field,
            len: bytes.len(),
            expected,
        });
    }
    Ok(())
}

fn validate_hello(m: &pb::Hello) -> Result<(), ControlError> {
    in_range("Hello.min_version", m.min_version.into(), 1, 255)?;
    in_range("Hello.max_version", m.max_version.into(), 1, 255)?;
    if m.max_version < m.min_version {
        return Err(ControlError::EmptyVersionRange {
            min: m.min_version,
            max: m.max_version,
        });
    }
    name("Hello.device_id", &m.device_id, MAX_DEVICE_ID_LEN)?;
    in_range(
        "Hello.max_frame_size",
        m.max_frame_size.into(),
        MIN_FRAME_SIZE.into(),
        crate::limits::MAX_FRAME_SIZE.into(),
    )?;
    in_range(
        "Hello.keepalive_interval_ms",
        m.keepalive_interval_ms.into(),
        MIN_KEEPALIVE_MS.into(),
        MAX_KEEPALIVE_MS.into(),
    )?;
    exact_len("Hello.nonce", &m.nonce, NONCE_LEN)?;
    in_range("Hello.max_data_size", m.max_data_size, 1, u64::MAX)
}

fn validate_peer(
    fields: [&'static str; 6],
    peer: Option<&pb::PeerInfo>,
    service_required: bool,
) -> Result<(), ControlError> {
    let [whole, device, bundle, module, ability, service] = fields;
    let peer = peer.ok_or(ControlError::Missing { field: whole })?;
    name(device, &peer.device_id, MAX_DEVICE_ID_LEN)?;
    name(bundle, &peer.bundle_name, MAX_NAME_LEN)?;
    name(module, &peer.module_name, MAX_NAME_LEN)?;
    name(ability, &peer.ability_name, MAX_NAME_LEN)?;
    if service_required || !peer.service_name.is_empty() {
        name(service, &peer.service_name, MAX_SERVICE_NAME_LEN)?;
    }
    Ok(())
}

fn validate_connect_request(m: &pb::ConnectRequest) -> Result<(), ControlError> {
    exact_len("ConnectRequest.token", &m.token, TOKEN_LEN)?;
    validate_peer(
        [
            "ConnectRequest.source",
            "ConnectRequest.source.device_id",
            "ConnectRequest.source.bundle_name",
            "ConnectRequest.source.module_name",
            "ConnectRequest.source.ability_name",
            "ConnectRequest.source.service_name",
        ],
        m.source.as_ref(),
        false,
    )?;
    validate_peer(
        [
            "ConnectRequest.target",
            "ConnectRequest.target.device_id",
            "ConnectRequest.target.bundle_name",
            "ConnectRequest.target.module_name",
            "ConnectRequest.target.ability_name",
            "ConnectRequest.target.service_name",
        ],
        m.target.as_ref(),
        true,
    )?;
    if let Some(options) = &m.options {
        if options.parameters.len() > MAX_PARAMETERS {
            return Err(ControlError::TooLong {
                field: "ConnectRequest.options.parameters",
                len: options.parameters.len(),
                max: MAX_PARAMETERS,
            });
        }
        for (key, value) in &options.parameters {
            name("ConnectRequest.options.parameters.key", key, MAX_NAME_LEN)?;
            max_len(
                "ConnectRequest.options.parameters.value",
                value,
                MAX_NAME_LEN,
            )?;
        }
    }
    Ok(())
}

fn validate_connect_response(m: &pb::ConnectResponse) -> Result<(), ControlError> {
    exact_len("ConnectResponse.token", &m.token, TOKEN_LEN)?;
    match &m.result {
        None => Err(ControlError::MissingResult),
        Some(pb::connect_response::Result::Accepted(_)) => Ok(()),
        Some(pb::connect_response::Result::Rejected(rejected)) => {
            required_enum("ConnectResponse.rejected.code", rejected.code)?;
            max_len(
                "ConnectResponse.rejected.reason",
                &rejected.reason,
                MAX_TEXT_LEN,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_as_char_is_control_finds_them() {
        let texts = [
            "EntryAbility",
            "com.example.notes",
            "with space",
            "Zürich",
            "日本語のアプリ",
            "tab\there",
            "new\nline",
            "nul\0",
            "del\u{7f}",
            "next line \u{85}",
            "c1 \u{9f} end",
            "\u{a0} no-break space",
            "~",
            "",
        ];
        for text in texts {
            assert_eq!(
                has_control_character(text),
                text.chars().any(char::is_control),
                "{text:?}"
            );
        }
    }

    #[test]
    fn sess_2_a_name_with_a_c1_control_character_is_refused() {
        assert_eq!(
            name("PeerInfo.bundle_name", "com.example\u{85}", MAX_NAME_LEN),
            Err(ControlError::ControlCharacter {
                field: "PeerInfo.bundle_name"
            })
        );
        assert_eq!(
            name("PeerInfo.bundle_name", "com.exämple", MAX_NAME_LEN),
            Ok(())
        );
    }
}

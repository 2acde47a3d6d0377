//! Control bodies larger than one frame: split across consecutive frames with the MORE flag, and
//! joined again within a bound (SPEC `FRAME-10`).

use bytes::{Bytes, BytesMut};

use crate::control::Control;
use crate::error::{EncodeError, FrameError};
use crate::frame::{Frame, FrameKind, is_link_frame, type_code};
use crate::header::{FLAG_MORE, FrameHeader, HEADER_LEN};
use crate::limits::{MAX_CONTROL_BODY, MAX_FRAME_SIZE};
use crate::pb::{self, FrameType};

/// Encodes `control` as one frame, or as several consecutive frames with MORE set on all but
/// the last when its body does not fit in `max_frame_size`. Link bodies are never split: one
/// that does not fit is an error.
pub fn encode_control(
    control: &Control,
    version: u8,
    channel: u32,
    max_frame_size: u32,
) -> Result<Vec<Bytes>, EncodeError> {
    let mut frames = Vec::new();
    encode_body(control, version, channel, max_frame_size, &mut frames)?;
    Ok(frames)
}

/// As [`encode_control`], appending the frames to `frames` (a queue of frames to send, say)
/// rather than returning them in a Vec of their own; nothing is appended on error.
pub fn encode_control_into(
    control: &Control,
    version: u8,
    channel: u32,
    max_frame_size: u32,
    frames: &mut impl Extend<Bytes>,
) -> Result<(), EncodeError> {
    encode_body(control, version, channel, max_frame_size, frames)
}

/// A CONNECT_REQUEST body whose parts are borrowed: a requester that keeps its apps' names
/// encodes them without copying them into a [`pb::ConnectRequest`] first.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRequestRef<'a> {
    /// The request's token.
    pub token: &'a [u8],
    /// The requesting app.
    pub source: &'a pb::PeerInfo,
    /// The app asked for, with the service name.
    pub target: &'a pb::PeerInfo,
    /// The options.
    pub options: &'a pb::ConnectOptions,
}

/// Encodes `request` as [`encode_control_into`] encodes the [`Control::ConnectRequest`]
/// holding the same values, byte for byte, appending the frames to `frames`; nothing is
/// appended on error.
pub fn encode_connect_request(
    request: &ConnectRequestRef<'_>,
    version: u8,
    channel: u32,
    max_frame_size: u32,
    frames: &mut impl Extend<Bytes>,
) -> Result<(), EncodeError> {
    encode_body(request, version, channel, max_frame_size, frames)
}

/// A CONNECT_RESPONSE that accepts, with its token borrowed: what a responder sends for every
/// request its app accepts, encoded without building a [`pb::ConnectResponse`] first.
#[derive(Debug, Clone, Copy)]
pub struct AcceptedResponseRef<'a> {
    /// The request's token.
    pub token: &'a [u8],
}

/// Encodes `response` as [`encode_control_into`] encodes the [`Control::ConnectResponse`]
/// holding the same token and `Accepted`, byte for byte, appending the frames to `frames`;
/// nothing is appended on error.
pub fn encode_accepted_response(
    response: &AcceptedResponseRef<'_>,
    version: u8,
    channel: u32,
    max_frame_size: u32,
    frames: &mut impl Extend<Bytes>,
) -> Result<(), EncodeError> {
    encode_body(response, version, channel, max_frame_size, frames)
}

/// A control body, as the encoder takes it.
trait Body {
    fn frame_type(&self) -> FrameType;
    fn encoded_len(&self) -> usize;
    /// Appends the protobuf encoding to `dst`, which grows as needed.
    fn encode_raw(&self, dst: &mut BytesMut);
}

impl Body for Control {
    fn frame_type(&self) -> FrameType {
        Control::frame_type(self)
    }

    fn encoded_len(&self) -> usize {
        Control::encoded_len(self)
    }

    fn encode_raw(&self, dst: &mut BytesMut) {
        self.encode_body_into(dst);
    }
}

/// The tag of each field of `pb::ConnectRequest`.
const TOKEN: u32 = 1;
const SOURCE: u32 = 2;
const TARGET: u32 = 3;
const OPTIONS: u32 = 4;

impl Body for ConnectRequestRef<'_> {
    fn frame_type(&self) -> FrameType {
        FrameType::ConnectRequest
    }

    fn encoded_len(&self) -> usize {
        use prost::encoding::message;
        // As prost's own: an empty token is left out, the messages are always there.
        bytes_field_len(TOKEN, self.token)
            .saturating_add(message::encoded_len(SOURCE, self.source))
            .saturating_add(message::encoded_len(TARGET, self.target))
            .saturating_add(message::encoded_len(OPTIONS, self.options))
    }

    fn encode_raw(&self, dst: &mut BytesMut) {
        use prost::encoding::message;
        encode_bytes_field(TOKEN, self.token, dst);
        message::encode(SOURCE, self.source, dst);
        message::encode(TARGET, self.target, dst);
        message::encode(OPTIONS, self.options, dst);
    }
}

/// The tag of `pb::ConnectResponse.accepted`.
const ACCEPTED: u32 = 2;

/// The length of a `bytes` field's encoding: left out when empty, as prost does.
fn bytes_field_len(tag: u32, bytes: &[u8]) -> usize {
    use prost::encoding::{encoded_len_varint, key_len};
    if bytes.is_empty() {
        return 0;
    }
    key_len(tag)
        .saturating_add(encoded_len_varint(bytes.len() as u64))
        .saturating_add(bytes.len())
}

/// Appends a `bytes` field's encoding, unless it is empty, as prost does.
fn encode_bytes_field(tag: u32, bytes: &[u8], dst: &mut BytesMut) {
    use bytes::BufMut as _;
    use prost::encoding::{WireType, encode_key, encode_varint};
    if !bytes.is_empty() {
        encode_key(tag, WireType::LengthDelimited, dst);
        encode_varint(bytes.len() as u64, dst);
        dst.put_slice(bytes);
    }
}

impl Body for AcceptedResponseRef<'_> {
    fn frame_type(&self) -> FrameType {
        FrameType::ConnectResponse
    }

    fn encoded_len(&self) -> usize {
        // The empty Accepted message: its key and a zero length.
        bytes_field_len(TOKEN, self.token)
            .saturating_add(prost::encoding::key_len(ACCEPTED))
            .saturating_add(1)
    }

    fn encode_raw(&self, dst: &mut BytesMut) {
        use bytes::BufMut as _;
        use prost::encoding::{WireType, encode_key};
        encode_bytes_field(TOKEN, self.token, dst);
        encode_key(ACCEPTED, WireType::LengthDelimited, dst);
        dst.put_u8(0);
    }
}

fn encode_body(
    control: &impl Body,
    version: u8,
    channel: u32,
    max_frame_size: u32,
    out: &mut impl Extend<Bytes>,
) -> Result<(), EncodeError> {
    let len = control.encoded_len();
    if len > MAX_CONTROL_BODY {
        return Err(EncodeError::TooLarge {
            len: len as u64,
            max: MAX_CONTROL_BODY as u64,
        });
    }
    let room = (max_frame_size.min(MAX_FRAME_SIZE) as usize).saturating_sub(HEADER_LEN);
    let frame_type = control.frame_type();
    if len <= room {
        // The usual case: the body is encoded straight after its header, in one buffer.
        let header = FrameHeader {
            version,
            frame_type: type_code(frame_type),
            flags: 0,
            // Within MAX_CONTROL_BODY, checked above.
            length: u32::try_from(len).unwrap_or(u32::MAX),
            channel,
        };
        let mut frame = BytesMut::with_capacity(HEADER_LEN.saturating_add(len));
        header.put(&mut frame);
        control.encode_raw(&mut frame);
        out.extend([frame.freeze()]);
        return Ok(());
    }
    if room == 0 || is_link_frame(frame_type) {
        return Err(EncodeError::FrameSizeTooSmall(max_frame_size));
    }
    let mut body = BytesMut::with_capacity(len);
    control.encode_raw(&mut body);
    let mut rest = body.freeze();
    let mut frames = Vec::with_capacity(rest.len().div_ceil(room));
    while !rest.is_empty() {
        let chunk = rest.split_to(room.min(rest.len()));
        let mut frame = Frame::new(version, frame_type, channel, chunk);
        if !rest.is_empty() {
            frame.flags = FLAG_MORE;
        }
        frames.push(frame.to_bytes()?);
    }
    out.extend(frames);
    Ok(())
}

/// Joins the frames of a control body split with MORE. Feed it every control frame in order;
/// it returns each whole body, and refuses an interleaved frame or a body over
/// [`MAX_CONTROL_BODY`] bytes, so a link holds at most one partial body of bounded size.
#[derive(Debug, Default)]
pub struct ControlAssembler {
    partial: Option<(FrameType, u32, BytesMut)>,
}

impl ControlAssembler {
    /// An assembler holding nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a body has begun and not ended.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes the next frame. Returns `Ok(Some((type, channel, body)))` when a whole control body
    /// is there, `Ok(None)` when more frames must follow, and `Ok(None)` for DATA and extension
    /// frames only when no body is in progress (they are the caller's to handle: check
    /// [`ControlAssembler::in_progress`] first, or use the error).
    pub fn push(&mut self, frame: &Frame) -> Result<Option<(FrameType, u32, Bytes)>, FrameError> {
        Ok(self
            .push_borrowed(frame)?
            .map(|(t, channel, body)| (t, channel, body.into_bytes())))
    }

    /// As [`ControlAssembler::push`], with a body that is the frame's own payload, not a new
    /// handle to it, when the body came whole in that frame (the usual case).
    pub fn push_borrowed<'f>(
        &mut self,
        frame: &'f Frame,
    ) -> Result<Option<(FrameType, u32, ControlBody<'f>)>, FrameError> {
        let more = frame.flags & FLAG_MORE != 0;
        let frame_type = match frame.kind {
            FrameKind::Known(t) if t != FrameType::Data => Some(t),
            _ => None,
        };
        let Some((t, channel, mut body)) = self.partial.take() else {
            let Some(t) = frame_type else {
                return Ok(None);
            };
            if !more {
                return Ok(Some((t, frame.channel, ControlBody::Whole(&frame.payload))));
            }
            check_size(frame.payload.len())?;
            self.partial = Some((t, frame.channel, BytesMut::from(&frame.payload[..])));
            return Ok(None);
        };
        // A body in progress: only its own continuation may follow (the partial body is
        // dropped on error, and the link closes).
        if frame_type != Some(t) || frame.channel != channel {
            return Err(FrameError::Interleaved {
                frame_type: frame.type_code(),
                channel: frame.channel,
            });
        }
        check_size(body.len().saturating_add(frame.payload.len()))?;
        body.extend_from_slice(&frame.payload);
        if more {
            self.partial = Some((t, channel, body));
            return Ok(None);
        }
        Ok(Some((t, channel, ControlBody::Joined(body.freeze()))))
    }
}

/// A whole control body from [`ControlAssembler::push_borrowed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlBody<'f> {
    /// The payload of the one frame it came in.
    Whole(&'f Bytes),
    /// The payloads of the frames it came in, joined.
    Joined(Bytes),
}

impl ControlBody<'_> {
    /// The body as bytes of its own.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Self::Whole(payload) => payload.clone(),
            Self::Joined(body) => body,
        }
    }
}

impl std::ops::Deref for ControlBody<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Whole(payload) => payload,
            Self::Joined(body) => body,
        }
    }
}

fn check_size(len: usize) -> Result<(), FrameError> {
    if len > MAX_CONTROL_BODY {
        return Err(FrameError::ControlBodyTooLarge {
            len: len as u64,
            max: MAX_CONTROL_BODY as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MIN_FRAME_SIZE;
    use crate::pb;

    fn peer(device: &str, service: &str, name_len: usize) -> pb::PeerInfo {
        pb::PeerInfo {
            device_id: device.into(),
            bundle_name: "b".repeat(name_len),
            module_name: "entry".into(),
            ability_name: "EntryAbility".into(),
            service_name: service.into(),
        }
    }

    #[test]
    fn a_borrowed_connect_request_encodes_as_the_owned_one() {
        let mut options = pb::ConnectOptions {
            need_send_data: Some(true),
            start_options: 1,
            parameters: Default::default(),
        };
        let small = (peer("phone", "", 10), peer("tablet", "chat", 10));
        let large = (peer("phone", "chat", 200), peer("tablet", "chat", 200));
        for (token, (source, target), max_frame) in [
            (vec![7u8; 16], &small, 65_535),
            (vec![], &small, 65_535),
            (vec![7u8; 16], &large, MIN_FRAME_SIZE),
            (vec![7u8; 16], &small, MIN_FRAME_SIZE),
        ] {
            for parameters in [0, 3] {
                options.parameters = (0..parameters)
                    .map(|i| (format!("key{i}"), "v".repeat(100)))
                    .collect();
                let owned = Control::ConnectRequest(pb::ConnectRequest {
                    token: token.clone().into(),
                    source: Some(source.clone()),
                    target: Some(target.clone()),
                    options: Some(options.clone()),
                });
                let borrowed = ConnectRequestRef {
                    token: &token,
                    source,
                    target,
                    options: &options,
                };
                assert_eq!(Body::encoded_len(&borrowed), owned.encoded_len());
                let mut frames = vec![Bytes::from_static(b"queued before")];
                encode_connect_request(&borrowed, 1, 3, max_frame, &mut frames).unwrap();
                let expected = encode_control(&owned, 1, 3, max_frame).unwrap();
                assert_eq!(frames[1..], expected);
                let mut into = Vec::new();
                encode_control_into(&owned, 1, 3, max_frame, &mut into).unwrap();
                assert_eq!(into, expected);
            }
        }
    }

    #[test]
    fn a_borrowed_accepted_response_encodes_as_the_owned_one() {
        for token in [vec![7u8; 16], vec![], vec![1u8; 200]] {
            let owned = Control::ConnectResponse(pb::ConnectResponse {
                token: token.clone().into(),
                result: Some(pb::connect_response::Result::Accepted(pb::Accepted {})),
            });
            let borrowed = AcceptedResponseRef { token: &token };
            assert_eq!(Body::encoded_len(&borrowed), owned.encoded_len());
            for max_frame in [65_535, MIN_FRAME_SIZE] {
                let mut frames = vec![Bytes::from_static(b"queued before")];
                encode_accepted_response(&borrowed, 1, 4, max_frame, &mut frames).unwrap();
                assert_eq!(
                    frames[1..],
                    encode_control(&owned, 1, 4, max_frame).unwrap()
                );
            }
        }
    }

    fn message(len: usize) -> Control {
        Control::Message(pb::Message {
            text: "m".repeat(len),
        })
    }

    fn decode_all(frames: &[Bytes], max: u32) -> Vec<Frame> {
        frames
            .iter()
            .map(|f| Frame::decode_exact(f.clone(), max, Some(1)).expect("valid frame"))
            .collect()
    }

    #[test]
    fn frame_10_a_body_that_fits_is_one_frame_without_more() {
        let frames = encode_control(&message(10), 1, 3, 244).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(decode_all(&frames, 244)[0].flags, 0);
    }

    #[test]
    fn a_body_that_fits_is_encoded_in_one_buffer_as_encode_frame_encodes_it() {
        let request = Control::ConnectRequest(pb::ConnectRequest {
            token: Bytes::from_static(&[7; 16]),
            source: Some(pb::PeerInfo {
                device_id: "phone".into(),
                bundle_name: "com.example".into(),
                module_name: "entry".into(),
                ability_name: "Main".into(),
                service_name: String::new(),
            }),
            target: None,
            options: Some(pb::ConnectOptions {
                need_send_data: Some(true),
                start_options: 1,
                parameters: [("k".to_string(), "v".to_string())].into(),
            }),
        });
        for control in [request, message(0), message(300)] {
            let frames = encode_control(&control, 1, 5, 65_535).unwrap();
            assert_eq!(frames, vec![control.encode_frame(1, 5).unwrap()]);
            assert_eq!(frames[0].len(), HEADER_LEN + control.encoded_len());
            assert_eq!(control.encode_body().len(), control.encoded_len());
        }
    }

    #[test]
    fn frame_10_a_large_body_is_split_and_joined_again() {
        let control = message(1024);
        let frames = encode_control(&control, 1, 3, MIN_FRAME_SIZE).unwrap();
        assert_eq!(frames.len(), 1027usize.div_ceil(116));
        let decoded = decode_all(&frames, MIN_FRAME_SIZE);
        let mut assembler = ControlAssembler::new();
        let (last, init) = decoded.split_last().unwrap();
        for frame in init {
            assert_eq!(frame.flags, FLAG_MORE);
            assert!(frame.encoded_len() <= MIN_FRAME_SIZE as usize);
            assert_eq!(assembler.push(frame), Ok(None));
            assert!(assembler.in_progress());
        }
        assert_eq!(last.flags, 0);
        let (t, channel, body) = assembler.push(last).unwrap().unwrap();
        assert_eq!((t, channel), (FrameType::Message, 3));
        assert_eq!(Control::decode(t, &body), Some(Ok(control)));
        assert!(!assembler.in_progress());
    }

    #[test]
    fn frame_10_link_bodies_are_never_split() {
        let close = Control::LinkClose(pb::LinkClose {
            reason: pb::LinkCloseReason::Normal.into(),
            message: "x".repeat(500),
        });
        assert_eq!(
            encode_control(&close, 1, 0, MIN_FRAME_SIZE),
            Err(EncodeError::FrameSizeTooSmall(MIN_FRAME_SIZE))
        );
    }

    #[test]
    fn frame_10_another_frame_inside_a_split_body_is_refused() {
        let frames = encode_control(&message(600), 1, 3, MIN_FRAME_SIZE).unwrap();
        let decoded = decode_all(&frames, MIN_FRAME_SIZE);
        let mut assembler = ControlAssembler::new();
        assert_eq!(assembler.push(&decoded[0]), Ok(None));
        let mut other_channel = decoded[1].clone();
        other_channel.channel = 5;
        let err = assembler.push(&other_channel).unwrap_err();
        assert_eq!(err.rule(), "FRAME-10");
        assert_eq!(err.close_reason(), pb::LinkCloseReason::ProtocolError);
        let data = Frame::new(1, FrameType::Data, 3, Bytes::from_static(&[0; 8]));
        let mut assembler = ControlAssembler::new();
        assembler.push(&decoded[0]).unwrap();
        assert!(matches!(
            assembler.push(&data),
            Err(FrameError::Interleaved { .. })
        ));
    }

    #[test]
    fn frame_10_a_joined_body_over_the_limit_is_refused_without_buffering_it() {
        let piece = Frame {
            flags: FLAG_MORE,
            ..Frame::new(1, FrameType::Message, 3, Bytes::from(vec![b'a'; 65_000]))
        };
        let mut assembler = ControlAssembler::new();
        for _ in 0..4 {
            assert_eq!(assembler.push(&piece), Ok(None));
        }
        let err = assembler.push(&piece).unwrap_err();
        assert_eq!(err.rule(), "FRAME-10");
        assert_eq!(err.close_reason(), pb::LinkCloseReason::FrameTooLarge);
        assert!(!assembler.in_progress());
    }

    #[test]
    fn data_and_extension_frames_pass_through_when_no_body_is_in_progress() {
        let mut assembler = ControlAssembler::new();
        let data = Frame::new(1, FrameType::Data, 3, Bytes::from_static(&[0; 8]));
        assert_eq!(assembler.push(&data), Ok(None));
        assert!(!assembler.in_progress());
    }
}

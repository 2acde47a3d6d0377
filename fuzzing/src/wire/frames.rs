//! The frame targets: the stream decoder against itself and the one-message decoder, and the
//! exact re-encoding of whatever decodes.

use bytes::{Bytes, BytesMut};

use crate::Input;
use acm_wire::continuation::ControlAssembler;
use acm_wire::control::Control;
use acm_wire::data::{DATA_HEADER_LEN, DataFragment, FIRST_DATA_HEADER_LEN};
use acm_wire::decoder::FrameDecoder;
use acm_wire::error::FrameError;
use acm_wire::frame::{Frame, FrameKind, type_code};
use acm_wire::header::{FLAG_FIRST, FLAG_MORE, FrameHeader, HEADER_LEN};
use acm_wire::limits::{MAX_CONTROL_BODY, MAX_FRAME_SIZE, MIN_FRAME_SIZE};
use acm_wire::pb::{FrameType, LinkCloseReason};

/// The receiver's `max_frame_size`, chosen by the low three bits of the configuration byte.
/// 0 picks the default; the others reach the bounds of `LINK-3` and below.
pub(super) const FRAME_SIZES: [u32; 8] = [
    65_535,
    MIN_FRAME_SIZE,
    256,
    1024,
    4096,
    MAX_FRAME_SIZE,
    29,
    HEADER_LEN as u32,
];

/// The configuration byte shared by the frame targets: bits 0-2 pick the receiver's
/// `max_frame_size` from [`FRAME_SIZES`], bits 3-4 the negotiated version (none yet, 1, 2, 1).
#[derive(Debug, Clone, Copy)]
struct Config {
    max_frame_size: u32,
    negotiated: Option<u8>,
}

impl Config {
    fn read(input: &mut Input<'_>) -> Self {
        let byte = input.byte();
        let max_frame_size = FRAME_SIZES[usize::from(byte & 7)];
        let negotiated = match (byte >> 3) & 3 {
            0 => None,
            2 => Some(2),
            _ => Some(1),
        };
        Self {
            max_frame_size,
            negotiated,
        }
    }

    fn decoder(&self) -> FrameDecoder {
        let mut decoder = FrameDecoder::new(self.max_frame_size);
        if let Some(version) = self.negotiated {
            decoder.set_negotiated_version(version);
        }
        decoder
    }
}

/// The rules of SPEC section 3.5 that a 12-byte header breaks, written from the text of
/// SPEC.md (type codes from its table in section 3.2) rather than from [`acm_wire::check_header`].
fn header_violations(
    header: &[u8; HEADER_LEN],
    max_frame_size: u32,
    negotiated: Option<u8>,
) -> Vec<&'static str> {
    let [m0, m1, version, code, flags, l0, l1, l2, c0, c1, c2, c3] = *header;
    let length = u32::from_be_bytes([0, l0, l1, l2]);
    let channel = u32::from_be_bytes([c0, c1, c2, c3]);
    let mut broken = Vec::new();
    if [m0, m1] != [0xAC, 0x4D] {
        broken.push("FRAME-2");
    }
    if u64::from(length).saturating_add(12) > u64::from(max_frame_size) {
        broken.push("FRAME-5");
    }
    if version == 0 {
        broken.push("FRAME-3");
    }
    // HELLO (1) and LINK_CLOSE (2) may carry any version; every other frame, extension frames
    // included, must carry the negotiated one.
    let version_exempt = matches!(code, 1 | 2);
    if let Some(negotiated) = negotiated
        && !version_exempt
        && version != negotiated
    {
        broken.push("FRAME-3");
    }
    match code {
        0 => broken.push("FRAME-6"),
        1..=10 => {
            // DATA defines FIRST and LAST; the session control types define MORE (3.3).
            let defined_flags = match code {
                8 => 0x03,
                5..=7 | 9 | 10 => 0x01,
                _ => 0,
            };
            if flags & !defined_flags != 0 {
                broken.push("FRAME-4");
            }
            let link_frame = code <= 4;
            if link_frame != (channel == 0) {
                broken.push("FRAME-8");
            }
        }
        0x0B..=0x7F => broken.push("FRAME-7"),
        0x80..=0xFF => {}
    }
    broken
}

fn header_of(bytes: &[u8]) -> Option<&[u8; HEADER_LEN]> {
    bytes.first_chunk::<HEADER_LEN>()
}

/// Checks an error against the model: the rule it names is one the input breaks, and it says
/// what the receiver does next as SPEC section 11 does.
fn check_error(err: &FrameError, broken: &[&str]) {
    assert!(
        broken.contains(&err.rule()),
        "error {err:?} names {}, but the input breaks only {broken:?}",
        err.rule()
    );
    let reason = if err.rule() == "FRAME-5" {
        LinkCloseReason::FrameTooLarge
    } else {
        LinkCloseReason::ProtocolError
    };
    assert_eq!(err.close_reason(), reason, "close reason of {err:?}");
    assert!(!err.to_string().is_empty());
}

/// A decoded frame obeys every header rule and fits the receiver's maximum.
fn check_frame_obeys_spec(frame: &Frame, config: Config) {
    let header = frame.header().to_bytes();
    let broken = header_violations(&header, config.max_frame_size, config.negotiated);
    assert!(
        broken.is_empty(),
        "decoded {frame:?}, which breaks {broken:?}"
    );
    assert!(frame.encoded_len() <= config.max_frame_size as usize);
    match frame.kind {
        FrameKind::Known(frame_type) => assert_ne!(frame_type, FrameType::Unspecified),
        FrameKind::Extension(code) => {
            assert!(code >= 0x80, "extension frame with critical code {code}");
            assert!(FrameType::try_from(i32::from(code)).is_err());
        }
    }
}

/// How a run of the stream decoder ended.
#[derive(Debug, PartialEq)]
enum End {
    /// A frame broke a rule; the decoder refuses everything after it.
    Failed(FrameError),
    /// The stream ended; what `decode_eof` said about the bytes left over.
    Eof(Result<Option<Frame>, FrameError>),
}

#[derive(Debug, PartialEq)]
struct Run {
    frames: Vec<Frame>,
    end: End,
}

/// Feeds `stream` to a fresh decoder in chunks of the lengths `cut` picks, decoding every whole
/// frame after each chunk, as a link's receive loop does.
fn decode_in_chunks(stream: &[u8], config: Config, mut cut: impl FnMut(usize) -> usize) -> Run {
    // BytesMut may double an allocation when it grows, and a payload split off the buffer keeps
    // the old allocation alive; more than this means the decoder reserved past its limit.
    let capacity_bound = (config.max_frame_size as usize)
        .max(stream.len())
        .saturating_mul(4);
    let mut decoder = config.decoder();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = cut(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        buf.extend_from_slice(chunk);
        rest = tail;
        loop {
            let (len_before, capacity_before) = (buf.len(), buf.capacity());
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert_eq!(buf.len(), len_before.saturating_sub(frame.encoded_len()));
                    assert!(frame.encoded_len() <= len_before);
                    frames.push(frame);
                }
                Ok(None) => {
                    assert_eq!(
                        buf.len(),
                        len_before,
                        "a decoder that waits consumes nothing"
                    );
                    if buf.capacity() > capacity_before {
                        assert!(
                            buf.capacity() <= capacity_bound,
                            "decoder grew the buffer to {} bytes (max frame {}, {} bytes fed)",
                            buf.capacity(),
                            config.max_frame_size,
                            stream.len()
                        );
                        let header = header_of(&buf).expect("reserved without a whole header");
                        assert!(
                            header_violations(header, config.max_frame_size, config.negotiated)
                                .is_empty(),
                            "reserved room for the payload of a header that breaks a rule"
                        );
                    }
                    break;
                }
                Err(err) => {
                    assert_eq!(buf.len(), len_before, "a failing decoder consumes nothing");
                    assert_eq!(
                        buf.capacity(),
                        capacity_before,
                        "a failing decoder reserves"
                    );
                    // The error sticks: the stream can no longer be trusted.
                    assert_eq!(decoder.decode(&mut buf), Err(err.clone()));
                    assert_eq!(decoder.decode_eof(&mut buf), Err(err.clone()));
                    return Run {
                        frames,
                        end: End::Failed(err),
                    };
                }
            }
        }
    }
    let eof = decoder.decode_eof(&mut buf);
    assert!(
        !matches!(eof, Ok(Some(_))),
        "decode_eof found a whole frame that decode had left"
    );
    Run {
        frames,
        end: End::Eof(eof),
    }
}

/// A small deterministic generator of chunk lengths.
struct Chunks {
    state: u32,
    limit: u32,
}

impl Chunks {
    fn new(byte: u8) -> Self {
        Self {
            state: u32::from(byte).wrapping_mul(0x9E37_79B9) | 1,
            limit: 1u32 << (byte & 7),
        }
    }

    fn next(&mut self, left: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let n = self
            .state
            .checked_rem(self.limit)
            .unwrap_or(0)
            .saturating_add(1);
        usize::try_from(n).unwrap_or(left)
    }
}

/// Checks a run of the decoder over `stream` against the bytes themselves: the frames are the
/// stream's prefix, each re-encoded to exactly its bytes and obeying every header rule, and the
/// end is explained by what is left.
fn check_run_against_stream(run: &Run, stream: &[u8], config: Config) {
    let mut rest = stream;
    for frame in &run.frames {
        check_frame_obeys_spec(frame, config);
        let (bytes, tail) = rest.split_at(frame.encoded_len());
        rest = tail;
        let encoded = frame.to_bytes().expect("a decoded frame encodes");
        assert_eq!(&encoded[..], bytes, "frame re-encodes to other bytes");
        let exact = Frame::decode_exact(
            Bytes::copy_from_slice(bytes),
            config.max_frame_size,
            config.negotiated,
        );
        assert_eq!(exact.as_ref(), Ok(frame), "decode_exact disagrees");
    }
    match &run.end {
        End::Failed(err) => {
            let header = header_of(rest).expect("failed without a whole header");
            let broken = header_violations(header, config.max_frame_size, config.negotiated);
            check_error(err, &broken);
        }
        End::Eof(Ok(None)) => assert!(rest.is_empty(), "bytes left over at a clean end"),
        End::Eof(Err(err @ FrameError::Incomplete { have })) => {
            assert_eq!(*have, rest.len());
            assert!(!rest.is_empty() && rest.len() < HEADER_LEN);
            check_error(err, &["FRAME-9"]);
        }
        End::Eof(Err(err @ FrameError::LengthMismatch { expected, got })) => {
            assert_eq!(*got, rest.len());
            assert!((*got as u64) < *expected);
            let header = header_of(rest).expect("partial payload without a header");
            let broken = header_violations(header, config.max_frame_size, config.negotiated);
            assert!(broken.is_empty(), "a bad header waited for its payload");
            assert_eq!(
                FrameHeader::parse(rest).map(|h| h.frame_len() as u64),
                Ok(*expected)
            );
            check_error(err, &["FRAME-9"]);
        }
        End::Eof(other) => panic!("unexpected end of stream: {other:?}"),
    }
}

/// Target `frame_decoder`: arbitrary bytes through the stream decoder, cut into chunks.
///
/// Input: a configuration byte (receiver's maximum frame size, negotiated version), a byte that
/// picks how the stream is cut, then the stream. The stream is decoded in one go, byte by byte
/// and in pseudo-random chunks; the three runs must agree, the buffer must stay bounded, every
/// frame must re-encode to its bytes and obey the header rules, and every error must name a
/// rule the offending header breaks. The frames then go through a [`ControlAssembler`], which
/// must join split control bodies exactly as SPEC section 3.7 says.
pub fn frame_decoder(data: &[u8]) {
    let mut input = Input::new(data);
    let config = Config::read(&mut input);
    let mut chunks = Chunks::new(input.byte());
    let stream = input.rest();

    let whole = decode_in_chunks(stream, config, |left| left);
    check_run_against_stream(&whole, stream, config);
    let bytewise = decode_in_chunks(stream, config, |_| 1);
    assert_eq!(bytewise, whole, "byte-by-byte decoding differs");
    let chunked = decode_in_chunks(stream, config, |left| chunks.next(left));
    assert_eq!(chunked, whole, "chunked decoding differs");
    assemble_control_bodies(&whole.frames);
}

/// A control body: its type code, its channel and its bytes.
type Body = (u8, u32, Vec<u8>);

/// The receiver's next stage: control bodies split with MORE are joined by a
/// [`ControlAssembler`], checked against SPEC section 3.7 (`FRAME-10`).
fn assemble_control_bodies(frames: &[Frame]) {
    let mut assembler = ControlAssembler::new();
    // The body in progress: type code, channel, the pieces so far.
    let mut partial: Option<Body> = None;
    for frame in frames {
        let code = frame.type_code();
        let control = matches!(frame.kind, FrameKind::Known(t) if t != FrameType::Data);
        let more = control && frame.flags & FLAG_MORE != 0;
        let expected: Result<Option<Body>, &str> = match partial.take() {
            Some((t, channel, _)) if (t, channel) != (code, frame.channel) => Err("interleaved"),
            Some((t, channel, mut body)) => {
                body.extend_from_slice(&frame.payload);
                if body.len() > MAX_CONTROL_BODY {
                    Err("too large")
                } else if more {
                    partial = Some((t, channel, body));
                    Ok(None)
                } else {
                    Ok(Some((t, channel, body)))
                }
            }
            None if !control => Ok(None),
            None if frame.payload.len() > MAX_CONTROL_BODY && more => Err("too large"),
            None if more => {
                partial = Some((code, frame.channel, frame.payload.to_vec()));
                Ok(None)
            }
            None => Ok(Some((code, frame.channel, frame.payload.to_vec()))),
        };
        let got = assembler.push(frame);
        assert_eq!(assembler.in_progress(), partial.is_some());
        match (expected, got) {
            (Ok(None), Ok(None)) => {}
            (Ok(Some((t, channel, body))), Ok(Some((frame_type, got_channel, got_body)))) => {
                assert_eq!(t, type_code(frame_type));
                assert_eq!(channel, got_channel);
                assert!(
                    got_body[..] == body[..],
                    "joined body is not the pieces sent"
                );
                // The receiver then decodes it; whatever it holds must not panic.
                let _ = Control::decode(frame_type, &got_body);
            }
            (Err(what), Err(err)) => {
                assert_eq!(err.rule(), "FRAME-10", "{what}: {err:?}");
                let reason = if what == "too large" {
                    LinkCloseReason::FrameTooLarge
                } else {
                    LinkCloseReason::ProtocolError
                };
                assert_eq!(err.close_reason(), reason, "{err:?}");
                // The link closes.
                return;
            }
            (expected, got) => panic!("{frame:?}: the model expects {expected:?}, got {got:?}"),
        }
    }
}

/// Target `frame_roundtrip`: one link message through [`Frame::decode_exact`].
///
/// Input: a configuration byte as for [`frame_decoder`], then the message. Whatever decodes
/// must re-encode to exactly the message, agree with the stream decoder, and, for DATA frames
/// and control frames, survive a round trip of its payload: a data fragment re-encodes to the
/// same frame, and a control body re-encodes to a canonical form that is stable under another
/// decode and encode.
pub fn frame_roundtrip(data: &[u8]) {
    let mut input = Input::new(data);
    let config = Config::read(&mut input);
    let message = input.rest();

    if let Some(head) = header_of(message)
        && let Ok(header) = FrameHeader::parse(message)
    {
        assert_eq!(&header.to_bytes(), head, "header re-encodes to other bytes");
    }

    let result = Frame::decode_exact(
        Bytes::copy_from_slice(message),
        config.max_frame_size,
        config.negotiated,
    );
    let mut broken = match header_of(message) {
        Some(header) => header_violations(header, config.max_frame_size, config.negotiated),
        None => Vec::new(),
    };
    // FRAME-9: a link message holds exactly one frame, 12 + payload length bytes.
    let one_frame = header_of(message).is_some_and(|&[.., l0, l1, l2, _, _, _, _]| {
        let length = u32::from_be_bytes([0, l0, l1, l2]) as usize;
        message.len() == HEADER_LEN.saturating_add(length)
    });
    if !one_frame {
        broken.push("FRAME-9");
    }

    let mut stream = BytesMut::from(message);
    let streamed = config.decoder().decode(&mut stream);
    let frame = match result {
        Ok(frame) => frame,
        Err(err) => {
            check_error(&err, &broken);
            match err {
                FrameError::Incomplete { .. } => assert_eq!(streamed, Ok(None)),
                FrameError::LengthMismatch { expected, got } if (got as u64) < expected => {
                    assert_eq!(streamed, Ok(None));
                }
                FrameError::LengthMismatch { expected, .. } => {
                    let frame = streamed
                        .ok()
                        .flatten()
                        .expect("a longer message holds a frame");
                    assert_eq!(frame.encoded_len() as u64, expected);
                }
                err => assert_eq!(streamed, Err(err), "the stream decoder disagrees"),
            }
            return;
        }
    };
    assert!(
        broken.is_empty(),
        "decoded {frame:?}, which breaks {broken:?}"
    );
    check_frame_obeys_spec(&frame, config);
    assert_eq!(
        streamed,
        Ok(Some(frame.clone())),
        "the stream decoder disagrees"
    );
    assert!(stream.is_empty());
    assert_eq!(
        &frame.to_bytes().expect("a decoded frame encodes")[..],
        message
    );
    assert_eq!(&frame.payload[..], &message[HEADER_LEN..]);

    match frame.kind {
        FrameKind::Known(FrameType::Data) => data_roundtrip(&frame),
        FrameKind::Known(frame_type) => control_roundtrip(&frame, frame_type),
        FrameKind::Extension(_) => {}
    }
}

fn data_roundtrip(frame: &Frame) {
    let needed = if frame.flags & FLAG_FIRST != 0 {
        FIRST_DATA_HEADER_LEN
    } else {
        DATA_HEADER_LEN
    };
    match DataFragment::parse(frame) {
        Ok(fragment) => {
            assert!(frame.payload.len() >= needed);
            assert_eq!(fragment.channel, frame.channel);
            assert_eq!(fragment.flags(), frame.flags);
            assert_eq!(fragment.chunk, frame.payload.slice(needed..));
            assert_eq!(fragment.to_frame(frame.version).as_ref(), Ok(frame));
            let mut encoded = BytesMut::new();
            fragment
                .encode(frame.version, &mut encoded)
                .expect("a parsed fragment encodes");
            assert_eq!(Ok(encoded.freeze()), frame.to_bytes());
        }
        Err(err) => {
            assert_eq!(err.rule(), "DATA-1", "{err:?}");
            assert!(frame.payload.len() < needed);
            assert_eq!(err.channel(), frame.channel);
        }
    }
}

fn control_roundtrip(frame: &Frame, frame_type: FrameType) {
    if frame.flags & FLAG_MORE != 0 {
        // One piece of a split body (SPEC section 3.7), not a body.
        return;
    }
    let Some(Ok(control)) = Control::decode(frame_type, &frame.payload) else {
        return;
    };
    let canonical = control.encode_body();
    let wire = control
        .encode_frame(frame.version, frame.channel)
        .expect("a decoded control body encodes");
    let again = Frame::decode_exact(wire, MAX_FRAME_SIZE, None).expect("re-encoded frame decodes");
    assert_eq!(again.payload, canonical);
    assert_eq!(
        (again.version, again.kind, again.flags, again.channel),
        (frame.version, frame.kind, frame.flags, frame.channel)
    );
    let redecoded = Control::decode(frame_type, &canonical);
    assert_eq!(
        redecoded,
        Some(Ok(control.clone())),
        "canonical body decodes otherwise"
    );
    assert_eq!(
        control.encode_body(),
        canonical,
        "canonical body is not stable"
    );
}

//! An observer of one TCP link: the bytes each side sent, cut into frames (and the TCP
//! binding's OPEN and CLOSE, and the secure layer's envelopes) and decoded for people, with the
//! SPEC rules each one breaks.
//!
//! This is what `acm proxy` prints. An [`Inspector`] judges nothing and drops nothing: it reads
//! what went by, says what it is, and notes every rule broken on the way. It checks what an
//! observer of one link can see: the header rules (section 3.5) against the peer's announced
//! `max_frame_size` and the negotiated version, HELLO first and once (`LINK-2`), the contents of
//! control bodies (section 8 and the rules of each message), split bodies (`FRAME-10`), the
//! order of data fragments (`DATA-1` to `DATA-5`), and the binding's own messages (`TCP-4` to
//! `TCP-6`). It holds at most one frame per direction (16 MiB at worst, what the header can
//! announce), one split control body per direction, and a bounded number of transfers.
//!
//! ```
//! use acm_wire::inspect::{Direction, Inspector};
//!
//! let mut inspector = Inspector::new();
//! let open = [0xac, 0x4d, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, b'p', b'h', b'o', b'n', b'e'];
//! let records = inspector.push(Direction::Dialer, &open);
//! assert_eq!(records[0].name, "OPEN");
//! assert_eq!(records[0].line(), "c>s OPEN len=5 device_id=\"phone\"");
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::control::Control;
use crate::frame::{FrameKind, check_header};
use crate::header::{FLAG_FIRST, FLAG_LAST, FLAG_MORE, FrameHeader, HEADER_LEN, MAGIC};
use crate::limits::{MAX_CONTROL_BODY, MAX_FRAME_SIZE};
use crate::pb::{self, FrameType};
use crate::schema;

mod data;
mod layers;

use data::data;

/// Which side sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The side that opened the TCP connection (the client): towards the acceptor.
    Dialer,
    /// The side that accepted it (the server): towards the dialer.
    Acceptor,
}

impl Direction {
    /// `c>s` for the dialer's bytes, `s>c` for the acceptor's.
    pub fn arrow(self) -> &'static str {
        match self {
            Self::Dialer => "c>s",
            Self::Acceptor => "s>c",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Dialer => 0,
            Self::Acceptor => 1,
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Dialer => Self::Acceptor,
            Self::Acceptor => Self::Dialer,
        }
    }
}

/// A rule of SPEC.md that a unit breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The rule's id, as in SPEC.md section 12 (`FRAME-2`).
    pub rule: &'static str,
    /// What is wrong.
    pub text: String,
}

/// One unit of the stream: a frame, a binding message, a secure envelope, or bytes that are
/// none of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Who sent it.
    pub direction: Direction,
    /// Where its first byte is in its direction's stream.
    pub offset: u64,
    /// Its bytes, exactly as they went by.
    pub bytes: Vec<u8>,
    /// Its header, when it has one.
    pub header: Option<FrameHeader>,
    /// What it is: a frame type's name (`HELLO`, `DATA`), `EXTENSION 0x80`, `UNKNOWN 0x0B`,
    /// `OPEN`, `CLOSE`, `BINDING 0x05`, `HANDSHAKE`, `RECORD`, `UNFRAMED` (bytes after the
    /// stream lost its framing) or `TRUNCATED` (a unit cut short by the end of the stream).
    pub name: String,
    /// What it says: control body fields by name (as [`schema::fields`] writes them), the data
    /// header, the binding messages' contents.
    pub fields: Vec<(String, String)>,
    /// The rules it breaks.
    pub problems: Vec<Problem>,
}

impl Record {
    fn note(&mut self, rule: &'static str, text: impl Into<String>) {
        self.problems.push(Problem {
            rule,
            text: text.into(),
        });
    }

    /// The flags' names (`FIRST`, `LAST`, `MORE`) for the frame's type.
    pub fn flag_names(&self) -> Vec<&'static str> {
        let Some(header) = self.header else {
            return Vec::new();
        };
        let mut names = Vec::new();
        if header.version == 0 {
            return names;
        }
        if header.frame_type == 8 {
            if header.flags & FLAG_FIRST != 0 {
                names.push("FIRST");
            }
            if header.flags & FLAG_LAST != 0 {
                names.push("LAST");
            }
        } else if (5..=10).contains(&header.frame_type) && header.flags & FLAG_MORE != 0 {
            names.push("MORE");
        }
        names
    }

    /// The record on one line, without time: direction, name, then for frames the channel,
    /// flags and length, then the fields and the rules broken (`!RULE: text`).
    pub fn line(&self) -> String {
        let mut out = format!("{} {}", self.direction.arrow(), self.name);
        match self.header {
            Some(h) if h.version != 0 && !matches!(h.frame_type, 0x7E | 0x7F) => {
                let _ = write!(out, " ch={} flags=0x{:02x}", h.channel, h.flags);
                let names = self.flag_names();
                if !names.is_empty() {
                    let _ = write!(out, "({})", names.join("|"));
                }
                let _ = write!(out, " len={}", h.length);
            }
            Some(h) => {
                let _ = write!(out, " len={}", h.length);
            }
            None => {
                let _ = write!(out, " bytes={}", self.bytes.len());
            }
        }
        for (name, value) in &self.fields {
            let _ = write!(out, " {name}={value}");
        }
        for problem in &self.problems {
            let _ = write!(out, " !{}: {}", problem.rule, problem.text);
        }
        out
    }
}

/// How many data transfers, and channels with a last transfer id, an inspector remembers per
/// direction; beyond that, new ones are shown without their order checked.
const MAX_TRACKED: usize = 4096;

/// How many times an inspector asks for the keys of one direction of a secure link (at its
/// first records) before it shows the rest of the records unopened.
const MAX_KEY_ASKS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing yet.
    Start,
    /// OPEN went by.
    Open,
    /// CLOSE went by: what follows is not read as frames by the peer.
    Closed,
    /// The framing is lost (a bad magic): the rest is shown as it comes.
    Lost,
}

#[derive(Debug, Clone, Copy)]
struct Transfer {
    next_index: u32,
    received: u64,
    total: u64,
}

#[derive(Debug)]
struct Pending {
    frame_type: u8,
    channel: u32,
    body: Vec<u8>,
    pieces: u32,
}

struct Side {
    buf: Vec<u8>,
    offset: u64,
    state: State,
    hello: Option<pb::Hello>,
    frames: u64,
    records: u64,
    pending: Option<Pending>,
    last_transfer: BTreeMap<u32, u32>,
    transfers: BTreeMap<(u32, u32), Transfer>,
    opener: Option<Box<dyn RecordOpen>>,
    opener_asked: u32,
}

impl Side {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            offset: 0,
            state: State::Start,
            hello: None,
            frames: 0,
            records: 0,
            pending: None,
            last_transfer: BTreeMap::new(),
            transfers: BTreeMap::new(),
            opener: None,
            opener_asked: 0,
        }
    }
}

/// Opens the records of one direction of a secure link (SPEC section 17.7).
pub trait RecordOpen: Send {
    /// The frame record `number` of the direction carries, from its envelope's `body`; `None`
    /// when it does not open.
    fn open(&mut self, number: u64, body: &[u8]) -> Option<Vec<u8>>;
}

/// Where an inspector finds the keys of secure links: a key log (SPEC section 17.12).
pub trait RecordKeys: Send + Sync {
    /// An opener for the records `direction` sends on the link whose handshake message 1
    /// carried the dialer's ephemeral key `dialer_ephemeral`; `None` when the keys are unknown
    /// (the inspector asks again at the direction's next record).
    fn opener(
        &self,
        dialer_ephemeral: &[u8; 32],
        direction: Direction,
    ) -> Option<Box<dyn RecordOpen>>;
}

/// Reads both directions of one link; see the module's documentation.
pub struct Inspector {
    sides: [Side; 2],
    handshakes: u32,
    secure: bool,
    dialer_ephemeral: Option<[u8; 32]>,
    keys: Option<std::sync::Arc<dyn RecordKeys>>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("handshakes", &self.handshakes)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl Default for Inspector {
    fn default() -> Self {
        Self::new()
    }
}

impl Inspector {
    /// An inspector for a new link, from its first byte.
    pub fn new() -> Self {
        Self {
            sides: [Side::new(), Side::new()],
            handshakes: 0,
            secure: false,
            dialer_ephemeral: None,
            keys: None,
        }
    }

    /// An inspector that opens the records of secure links with `keys`, and shows the frames
    /// inside them as it shows plain ones (with their record's number as field `record`).
    pub fn with_keys(keys: std::sync::Arc<dyn RecordKeys>) -> Self {
        Self {
            keys: Some(keys),
            ..Self::new()
        }
    }

    /// The link's id in key logs (the dialer's ephemeral key) when this inspector has keys to
    /// ask, the link is secure, and it has not asked yet for `direction`'s: a caller that reads
    /// the key log while the peers write it can wait for the link's line before it pushes the
    /// direction's first records.
    pub fn awaiting_keys(&self, direction: Direction) -> Option<[u8; 32]> {
        let side = &self.sides[direction.index()];
        (self.keys.is_some() && side.opener.is_none() && side.opener_asked == 0)
            .then_some(self.dialer_ephemeral)
            .flatten()
    }

    /// Takes the next bytes `direction` sent and returns the units they complete, in order.
    pub fn push(&mut self, direction: Direction, bytes: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        let side = &mut self.sides[direction.index()];
        if side.state == State::Lost {
            if !bytes.is_empty() {
                out.push(Record {
                    direction,
                    offset: side.offset,
                    bytes: bytes.to_vec(),
                    header: None,
                    name: "UNFRAMED".into(),
                    fields: Vec::new(),
                    problems: Vec::new(),
                });
                side.offset = side.offset.saturating_add(bytes.len() as u64);
            }
            return out;
        }
        side.buf.extend_from_slice(bytes);
        loop {
            let side = &mut self.sides[direction.index()];
            let magic_ok = side.buf.iter().zip(MAGIC).all(|(a, b)| *a == b);
            if !magic_ok {
                let bytes = std::mem::take(&mut side.buf);
                let problem = Problem {
                    rule: "FRAME-2",
                    text: format!(
                        "magic {} is not ac4d; the rest of this direction is not frames",
                        schema::hex(bytes.get(..2).unwrap_or(&bytes))
                    ),
                };
                side.state = State::Lost;
                out.push(Record {
                    direction,
                    offset: side.offset,
                    header: None,
                    name: "UNFRAMED".into(),
                    fields: Vec::new(),
                    problems: vec![problem],
                    bytes: bytes.clone(),
                });
                side.offset = side.offset.saturating_add(bytes.len() as u64);
                return out;
            }
            let Ok(header) = FrameHeader::parse(&side.buf) else {
                return out;
            };
            let len = header.frame_len();
            if side.buf.len() < len {
                return out;
            }
            let rest = side.buf.split_off(len);
            let unit = std::mem::replace(&mut side.buf, rest);
            let offset = side.offset;
            side.offset = side.offset.saturating_add(len as u64);
            let mut record = Record {
                direction,
                offset,
                bytes: Vec::new(),
                header: Some(header),
                name: String::new(),
                fields: Vec::new(),
                problems: Vec::new(),
            };
            self.read_unit(
                &mut record,
                header,
                unit.get(HEADER_LEN..).unwrap_or_default(),
            );
            record.bytes = unit;
            out.push(record);
        }
    }

    /// The stream of `direction` ended: the unit it was in the middle of, if any, cut short.
    pub fn finish(&mut self, direction: Direction) -> Option<Record> {
        let side = &mut self.sides[direction.index()];
        if side.buf.is_empty() {
            return None;
        }
        let bytes = std::mem::take(&mut side.buf);
        let header = FrameHeader::parse(&bytes).ok();
        let record = Record {
            direction,
            offset: side.offset,
            header,
            name: "TRUNCATED".into(),
            fields: Vec::new(),
            problems: vec![Problem {
                rule: "FRAME-9",
                text: format!(
                    "the stream ended {} bytes into a unit of {}",
                    bytes.len(),
                    header.map_or_else(|| "at least 12".into(), |h| h.frame_len().to_string())
                ),
            }],
            bytes,
        };
        side.offset = side.offset.saturating_add(record.bytes.len() as u64);
        Some(record)
    }

    fn read_unit(&mut self, record: &mut Record, header: FrameHeader, payload: &[u8]) {
        let direction = record.direction;
        let state = self.sides[direction.index()].state;
        if state == State::Closed {
            record.note("TCP-6", "sent after CLOSE; the peer does not read it");
        }
        if header.version == 0 {
            self.binding_message(record, header, payload);
            return;
        }
        if state == State::Start {
            record.note("TCP-5", "the first message on the connection is not OPEN");
            self.sides[direction.index()].state = State::Open;
        }
        let no_hello_yet = self.sides[direction.index()].hello.is_none();
        if matches!(header.frame_type, 0x7E | 0x7F) && (self.secure || no_hello_yet) {
            self.envelope(record, header, payload);
            return;
        }
        if self.secure {
            record.note("SEC-9", "a plain frame on a secure link");
        }
        self.frame(record, header, payload);
    }

    fn frame(&mut self, record: &mut Record, header: FrameHeader, payload: &[u8]) {
        let direction = record.direction;
        let max = self.sides[direction.other().index()]
            .hello
            .as_ref()
            .map_or(MAX_FRAME_SIZE, |h| {
                h.max_frame_size.clamp(128, MAX_FRAME_SIZE)
            });
        let negotiated = self.negotiated();
        record.name = match FrameKind::from_code(header.frame_type) {
            Ok(FrameKind::Known(_)) => {
                schema::enum_value_name("FrameType", i64::from(header.frame_type))
                    .unwrap_or("?")
                    .to_string()
            }
            Ok(FrameKind::Extension(code)) => format!("EXTENSION 0x{code:02x}"),
            Err(_) => format!("UNKNOWN 0x{:02x}", header.frame_type),
        };
        let kind = match check_header(&header, max, negotiated) {
            Ok(kind) => Some(kind),
            Err(err) => {
                record.note(err.rule(), err.to_string());
                FrameKind::from_code(header.frame_type).ok()
            }
        };
        let side = &mut self.sides[direction.index()];
        side.frames = side.frames.saturating_add(1);
        let Some(FrameKind::Known(frame_type)) = kind else {
            if let Some(pending) = side.pending.take() {
                interrupted(record, &pending);
            }
            return;
        };
        if side.hello.is_none() && !matches!(frame_type, FrameType::Hello | FrameType::LinkClose) {
            record.note("LINK-2", "the first frame of a link is HELLO");
        }
        if frame_type == FrameType::Data {
            if let Some(pending) = side.pending.take() {
                interrupted(record, &pending);
            }
            data(side, record, header, payload);
            return;
        }
        let Some(message) = schema::body_message(header.frame_type) else {
            return;
        };
        // Split bodies (FRAME-10): pieces are joined, the body decoded with its last piece.
        let mut joined = None;
        if let Some(pending) = side.pending.take() {
            if pending.frame_type == header.frame_type && pending.channel == header.channel {
                joined = Some(pending);
            } else {
                interrupted(record, &pending);
            }
        }
        let more = header.flags & FLAG_MORE != 0 && (5..=10).contains(&header.frame_type);
        if more || joined.is_some() {
            let mut pending = joined.unwrap_or(Pending {
                frame_type: header.frame_type,
                channel: header.channel,
                body: Vec::new(),
                pieces: 0,
            });
            pending.pieces = pending.pieces.saturating_add(1);
            record
                .fields
                .push(("piece".into(), pending.pieces.to_string()));
            if pending.body.len().saturating_add(payload.len()) > MAX_CONTROL_BODY {
                record.note(
                    "FRAME-10",
                    format!("a split body over {MAX_CONTROL_BODY} bytes"),
                );
                return;
            }
            pending.body.extend_from_slice(payload);
            if more {
                side.pending = Some(pending);
                return;
            }
            self.body(record, frame_type, message, &pending.body);
        } else {
            self.body(record, frame_type, message, payload);
        }
    }

    fn body(
        &mut self,
        record: &mut Record,
        frame_type: FrameType,
        message: &schema::Message,
        body: &[u8],
    ) {
        let direction = record.direction;
        let side = &mut self.sides[direction.index()];
        let walked = schema::fields(message, body);
        match Control::decode_unchecked(frame_type, body) {
            Some(Ok(control)) => {
                if let Err(err) = control.validate() {
                    record.note(err.rule(), err.to_string());
                }
                match control {
                    Control::Hello(hello) => {
                        if side.hello.is_some() {
                            record.note("LINK-2", "a second HELLO");
                        } else {
                            side.hello = Some(hello);
                        }
                    }
                    Control::Disconnect(_) => {
                        let channel = record.header.map_or(0, |h| h.channel);
                        side.transfers.retain(|(c, _), _| *c != channel);
                    }
                    _ => {}
                }
            }
            Some(Err(err)) => record.note(err.rule(), err.to_string()),
            None => {}
        }
        match walked {
            Ok(fields) => record.fields.extend(fields),
            Err(err) => {
                if !record.problems.iter().any(|p| p.rule == "CTRL-1") {
                    record.note("CTRL-1", err.0);
                }
            }
        }
    }

    /// The link's version once both HELLOs went by and have one in common.
    fn negotiated(&self) -> Option<u8> {
        let a = self.sides[0].hello.as_ref()?;
        let b = self.sides[1].hello.as_ref()?;
        let high = a.max_version.min(b.max_version);
        let low = a.min_version.max(b.min_version);
        if low > high {
            return None;
        }
        u8::try_from(high).ok().filter(|v| *v > 0)
    }
}

/// Notes that `record` interrupts the split body `pending` (`FRAME-10`).
fn interrupted(record: &mut Record, pending: &Pending) {
    record.note(
        "FRAME-10",
        format!(
            "interrupts the {} body in progress on channel {}",
            type_name(pending.frame_type),
            pending.channel
        ),
    );
}

fn type_name(code: u8) -> &'static str {
    schema::enum_value_name("FrameType", i64::from(code)).unwrap_or("?")
}

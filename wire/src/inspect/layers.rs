//! The units around acm's frames that an inspector reads: the TCP binding's own messages
//! (`TCP-4` to `TCP-6`) and the secure layer's envelopes and records.

use super::*;

impl Inspector {
    pub(super) fn binding_message(
        &mut self,
        record: &mut Record,
        header: FrameHeader,
        payload: &[u8],
    ) {
        let side = &mut self.sides[record.direction.index()];
        if header.flags != 0 || header.channel != 0 {
            record.note(
                "TCP-4",
                "a binding message's flags and channel must be zero",
            );
        }
        match header.frame_type {
            1 => {
                record.name = "OPEN".into();
                match std::str::from_utf8(payload) {
                    Ok(id) => record.fields.push(("device_id".into(), schema::quote(id))),
                    Err(_) => record.note("TCP-4", "the device id is not UTF-8"),
                }
                if payload.is_empty() || payload.len() > 64 {
                    record.note(
                        "TCP-4",
                        format!(
                            "an OPEN's device id is 1 to 64 bytes, not {}",
                            payload.len()
                        ),
                    );
                }
                if side.state != State::Start {
                    record.note("TCP-5", "a second OPEN");
                } else {
                    side.state = State::Open;
                }
            }
            2 => {
                record.name = "CLOSE".into();
                if let Some((code, text)) = payload.split_first_chunk::<4>() {
                    let code = u32::from_be_bytes(*code);
                    record.fields.push(("code".into(), code.to_string()));
                    match std::str::from_utf8(text) {
                        Ok(text) => record.fields.push(("text".into(), schema::quote(text))),
                        Err(_) => record.note("TCP-4", "the close message is not UTF-8"),
                    }
                    if text.len() > 1024 {
                        record.note(
                            "TCP-4",
                            format!("a close message of {} bytes; at most 1024", text.len()),
                        );
                    }
                } else {
                    record.note("TCP-4", "a CLOSE without its 4-byte code");
                }
                if side.state == State::Start {
                    record.note("TCP-5", "the first message on the connection is not OPEN");
                }
                side.state = State::Closed;
            }
            kind => {
                record.name = format!("BINDING 0x{kind:02x}");
                if side.state == State::Start {
                    record.note("TCP-5", "the first message on the connection is not OPEN");
                }
            }
        }
    }

    pub(super) fn envelope(&mut self, record: &mut Record, header: FrameHeader, payload: &[u8]) {
        if header.version != 1 || header.flags != 0 || header.channel != 0 {
            record.note(
                if header.frame_type == 0x7E {
                    "SEC-5"
                } else {
                    "SEC-9"
                },
                "an envelope has version 1, flags 0 and channel 0",
            );
        }
        if header.frame_type == 0x7E {
            self.secure = true;
            self.handshakes = self.handshakes.saturating_add(1);
            if self.handshakes == 1
                && let Some(key) = payload.first_chunk::<32>()
            {
                self.dialer_ephemeral = Some(*key);
            }
            record.name = "HANDSHAKE".into();
            record
                .fields
                .push(("message".into(), self.handshakes.to_string()));
            let expected = match self.handshakes {
                1 => Some(64),
                2 | 3 => Some(96),
                _ => None,
            };
            match expected {
                Some(expected) if header.length != expected => record.note(
                    "SEC-5",
                    format!(
                        "handshake message {} is {expected} bytes, not {}",
                        self.handshakes, header.length
                    ),
                ),
                None => record.note("SEC-5", "a handshake message after the third"),
                Some(_) => {}
            }
        } else {
            let direction = record.direction;
            let side = &mut self.sides[direction.index()];
            let number = side.records;
            record.name = "RECORD".into();
            record.fields.push(("number".into(), number.to_string()));
            side.records = side.records.saturating_add(1);
            if !self.secure {
                record.note("SEC-9", "a record before any handshake");
            }
            self.open_record(record, number, payload);
        }
    }

    /// Opens a record with the key log's keys, when there are some for the link, and shows the
    /// frame inside as any frame.
    pub(super) fn open_record(&mut self, record: &mut Record, number: u64, body: &[u8]) {
        let direction = record.direction;
        let (Some(keys), Some(id)) = (&self.keys, self.dialer_ephemeral) else {
            return;
        };
        let side = &mut self.sides[direction.index()];
        if side.opener.is_none() && side.opener_asked < MAX_KEY_ASKS {
            side.opener_asked = side.opener_asked.saturating_add(1);
            side.opener = keys.opener(&id, direction);
        }
        let Some(opener) = side.opener.as_mut() else {
            return;
        };
        let Some(frame) = opener.open(number, body) else {
            record.note("SEC-9", "the record does not open with the key log's key");
            return;
        };
        if number == 0 {
            record.fields.push(("opened".into(), "confirmation".into()));
            if !frame.is_empty() {
                record.note("SEC-8", "the confirmation (record 0) is not empty");
            }
            return;
        }
        let header = match FrameHeader::parse(&frame) {
            Ok(header) if header.frame_len() == frame.len() => header,
            _ => {
                record.note("SEC-9", "the record does not hold exactly one frame");
                return;
            }
        };
        let mut inner = Record {
            direction,
            offset: record.offset,
            bytes: Vec::new(),
            header: Some(header),
            name: String::new(),
            fields: vec![("record".into(), number.to_string())],
            problems: std::mem::take(&mut record.problems),
        };
        self.frame(
            &mut inner,
            header,
            frame.get(HEADER_LEN..).unwrap_or_default(),
        );
        record.name = inner.name;
        record.header = inner.header;
        record.fields = inner.fields;
        record.problems = inner.problems;
    }
}

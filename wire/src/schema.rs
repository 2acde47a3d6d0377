//! The schema of `proto/acm/v1/acm.proto` as tables, generated from the file at build time, and a
//! decoder that names the fields of any control body by them.
//!
//! Inspecting tools (`acm proxy`, the Wireshark dissector in `tools/wireshark/`) show a body as
//! `name=value` pairs without knowing the messages by heart: [`fields`] walks the protobuf
//! encoding with these tables, and [`lua_table`] writes the same tables for the dissector, so
//! that the two name and format every field alike and neither can drift from the proto file.
//!
//! Values are written as: numbers in decimal, booleans `true`/`false`, enum values by their
//! name without the enum's prefix (`PROTOCOL_ERROR`; a number not in the enum as itself),
//! strings in double quotes with `"`, `\` and control characters escaped as `\"`, `\\`,
//! `\u{..}`, bytes in lowercase hexadecimal, and a present but empty message as `{}`. A nested
//! message's fields are named `outer.inner`.

use std::fmt::Write as _;

/// What a field holds, as far as showing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `uint32` or `uint64`.
    Uint,
    /// `bool`.
    Bool,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// A message, by its name in [`MESSAGES`].
    Message(&'static str),
    /// An enum, by its name in [`ENUMS`].
    Enum(&'static str),
}

/// A field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field number.
    pub number: u32,
    /// The field name.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Whether it is repeated (maps are repeated entry messages).
    pub repeated: bool,
}

/// A message of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// Its name; nested messages are `Outer.Inner`.
    pub name: &'static str,
    /// Its fields, in the order of the proto file.
    pub fields: &'static [Field],
}

/// An enum of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enum {
    /// Its name.
    pub name: &'static str,
    /// Its values and their names without the common prefix (`PROTOCOL_ERROR`).
    pub values: &'static [(i32, &'static str)],
}

include!(concat!(env!("OUT_DIR"), "/schema_table.rs"));

/// The message called `name`.
pub fn message(name: &str) -> Option<&'static Message> {
    MESSAGES.iter().find(|m| m.name == name)
}

/// The enum called `name`.
pub fn enumeration(name: &str) -> Option<&'static Enum> {
    ENUMS.iter().find(|e| e.name == name)
}

/// The name of value `value` of enum `name`, if it has one.
pub fn enum_value_name(name: &str, value: i64) -> Option<&'static str> {
    let en = enumeration(name)?;
    en.values
        .iter()
        .find(|(v, _)| i64::from(*v) == value)
        .map(|(_, n)| *n)
}

/// The message that frame type `code` carries as its body (`FrameType` value `HELLO` carries
/// `Hello`, `LINK_CLOSE` carries `LinkClose`), if there is one.
pub fn body_message(code: u8) -> Option<&'static Message> {
    let name = enum_value_name("FrameType", i64::from(code))?;
    message(&camel_case(name))
}

/// `LINK_CLOSE` as `LinkClose`.
fn camel_case(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect()
}

/// How deep messages may nest before [`fields`] gives up (the schema nests three deep).
const MAX_DEPTH: usize = 8;

/// How many fields [`fields`] reports at most for one body.
const MAX_FIELDS: usize = 512;

/// Why a body could not be walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError(pub String);

/// The fields of `body`, an encoding of `message`, as `(name, value)` pairs in the order they
/// come, formatted as the module says. Fields the schema does not know are shown as
/// `#number`. Fails on bytes that are not a protobuf encoding (the fields before the fault are
/// lost; callers show the error instead).
pub fn fields(message: &Message, body: &[u8]) -> Result<Vec<(String, String)>, WalkError> {
    let mut out = Vec::new();
    walk(message, body, "", 0, &mut out)?;
    Ok(out)
}

fn walk(
    message: &Message,
    mut body: &[u8],
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, String)>,
) -> Result<(), WalkError> {
    if depth > MAX_DEPTH {
        return Err(WalkError("messages nest too deep".into()));
    }
    while !body.is_empty() {
        if out.len() >= MAX_FIELDS {
            return Err(WalkError("too many fields".into()));
        }
        let key = varint(&mut body)?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..=536_870_911).contains(n))
            .ok_or_else(|| WalkError(format!("field number {} is not valid", key >> 3)))?;
        let wire_type = key & 7;
        let field = message.fields.iter().find(|f| f.number == number);
        let name = match field {
            Some(f) => format!("{prefix}{}", f.name),
            None => format!("{prefix}#{number}"),
        };
        match wire_type {
            0 => {
                let value = varint(&mut body)?;
                let text = match field.map(|f| f.kind) {
                    Some(Kind::Bool) => (value != 0).to_string(),
                    Some(Kind::Enum(en)) => {
                        // Enums are int32: negative values come as ten-byte varints.
                        let signed = i64::from(value as i32);
                        match enum_value_name(en, signed) {
                            Some(n) => n.to_string(),
                            None => signed.to_string(),
                        }
                    }
                    _ => value.to_string(),
                };
                out.push((name, text));
            }
            2 => {
                let len = varint(&mut body)?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|len| *len <= body.len())
                    .ok_or_else(|| WalkError(format!("{name}: length past the end of the body")))?;
                let (value, rest) = body.split_at(len);
                body = rest;
                match field.map(|f| f.kind) {
                    Some(Kind::String) => out.push((name, quote(&String::from_utf8_lossy(value)))),
                    Some(Kind::Message(inner)) => {
                        let inner = self::message(inner)
                            .ok_or_else(|| WalkError(format!("{name}: unknown message")))?;
                        if value.is_empty() {
                            out.push((name, "{}".into()));
                        } else {
                            walk(
                                inner,
                                value,
                                &format!("{name}."),
                                depth.saturating_add(1),
                                out,
                            )?;
                        }
                    }
                    _ => out.push((name, hex(value))),
                }
            }
            1 | 5 => {
                let width = if wire_type == 1 { 8 } else { 4 };
                if body.len() < width {
                    return Err(WalkError(format!("{name}: fixed value past the end")));
                }
                let (value, rest) = body.split_at(width);
                body = rest;
                out.push((name, hex(value)));
            }
            other => {
                return Err(WalkError(format!(
                    "{name}: wire type {other} is not supported"
                )));
            }
        }
    }
    Ok(())
}

/// Reads a protobuf varint from the front of `body`.
fn varint(body: &mut &[u8]) -> Result<u64, WalkError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some((&byte, rest)) = body.split_first() else {
            return Err(WalkError("varint past the end of the body".into()));
        };
        *body = rest;
        value |= u64::from(byte & 0x7F).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WalkError("varint longer than ten bytes".into()))
}

/// `bytes` as lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `text` in double quotes, `"` and `\` escaped, control characters as `\u{..}`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().saturating_add(2));
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first line of the generated part of the Wireshark dissector.
pub const LUA_BEGIN: &str =
    "-- BEGIN SCHEMA (generated from proto/acm/v1/acm.proto: do not edit by hand)";

/// The last line of the generated part of the Wireshark dissector.
pub const LUA_END: &str = "-- END SCHEMA";

/// The schema as the Lua table the Wireshark dissector names fields by, between [`LUA_BEGIN`]
/// and [`LUA_END`]: `SCHEMA.messages[name]` is a list of `{number, name, kind, type, repeated}`
/// (kind one of `uint`, `bool`, `string`, `bytes`, `message`, `enum`; type the message's or
/// enum's name), `SCHEMA.enums[name][value]` a value's name, and `SCHEMA.bodies[code]` the
/// message frame type `code` carries.
pub fn lua_table() -> String {
    let mut out = String::new();
    out.push_str(LUA_BEGIN);
    out.push_str("\nlocal SCHEMA = {\n  messages = {\n");
    for m in MESSAGES {
        let _ = writeln!(out, "    [{:?}] = {{", m.name);
        for f in m.fields {
            let (kind, ty) = match f.kind {
                Kind::Uint => ("uint", ""),
                Kind::Bool => ("bool", ""),
                Kind::String => ("string", ""),
                Kind::Bytes => ("bytes", ""),
                Kind::Message(t) => ("message", t),
                Kind::Enum(t) => ("enum", t),
            };
            let _ = writeln!(
                out,
                "      {{ {}, {:?}, {kind:?}, {ty:?}, {} }},",
                f.number, f.name, f.repeated
            );
        }
        out.push_str("    },\n");
    }
    out.push_str("  },\n  enums = {\n");
    for e in ENUMS {
        let _ = writeln!(out, "    [{:?}] = {{", e.name);
        for (value, name) in e.values {
            let _ = writeln!(out, "      [{value}] = {name:?},");
        }
        out.push_str("    },\n");
    }
    out.push_str("  },\n  bodies = {\n");
    for code in 0..=u8::MAX {
        if let Some(m) = body_message(code) {
            let _ = writeln!(out, "    [{code}] = {:?},", m.name);
        }
    }
    out.push_str("  },\n}\n");
    out.push_str(LUA_END);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_types_name_their_bodies() {
        assert_eq!(body_message(1).map(|m| m.name), Some("Hello"));
        assert_eq!(body_message(2).map(|m| m.name), Some("LinkClose"));
        assert_eq!(body_message(10).map(|m| m.name), Some("CollaborateEvent"));
        assert_eq!(body_message(8), None);
        assert_eq!(
            enum_value_name("LinkCloseReason", 2),
            Some("PROTOCOL_ERROR")
        );
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        let hello = message("Hello").unwrap();
        for body in [
            &[0x0a][..],
            &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
            &[0x08; 11],
            &[
                0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ],
            &[0x0b],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ] {
            let _ = fields(hello, body);
        }
        // A ConnectRequest whose PeerInfo nests nothing but keeps calling itself is bounded.
        let request = message("ConnectRequest").unwrap();
        let mut body = vec![];
        for _ in 0..20 {
            let mut outer = vec![0x12, u8::try_from(body.len()).unwrap_or(0)];
            outer.extend_from_slice(&body);
            body = outer;
            if body.len() > 100 {
                break;
            }
        }
        let _ = fields(request, &body);
    }
}

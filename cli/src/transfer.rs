//! The app-level file convention of `acm send` and `acm listen --save-dir` (README, "Sending a
//! file"; SPEC section 18): the messages it is made of and the hashing both ends do. The
//! receiving end is in `receive.rs`, the progress meter both ends print in `meter.rs`.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The version of the convention this side speaks; it also understands version 1.
pub const VERSION: u64 = 2;

/// The largest chunk a sender puts in one `send_data` unless the receiver asks for less.
pub const DEFAULT_CHUNK: u64 = 4 << 20;

/// The bytes handled at once when a chunk is both hashed and copied (read from the file, or
/// written to it): few enough to stay in a processor's cache between the two.
pub const CACHE_PIECE: usize = 256 << 10;

/// The most bytes read or hashed at once when going through a file already on disk.
const READ_BLOCK: usize = 1 << 20;

/// What the first message of a file transfer announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// The convention's version: 1 (one `send_data`, the hash announced first) or 2 (chunks,
    /// the hash at the end, resumable).
    pub version: u64,
    /// The file's name, without any directory.
    pub name: String,
    /// Its length in bytes.
    pub length: u64,
    /// Version 1 only: the SHA-256 of its bytes, in lowercase hex.
    pub sha256: Option<String>,
}

impl FileHeader {
    /// The version 2 header of a file of `length` bytes named `name`.
    pub fn new(name: &str, length: u64) -> Self {
        Self {
            version: VERSION,
            name: name.to_string(),
            length,
            sha256: None,
        }
    }

    /// The message that announces the file.
    pub fn to_message(&self) -> String {
        let mut file = json!({ "name": self.name, "length": self.length });
        if self.version != 1 {
            file["version"] = json!(self.version);
        }
        if let Some(sha256) = &self.sha256 {
            file["sha256"] = json!(sha256);
        }
        json!({ "acm-file": file }).to_string()
    }
}

/// One message of the convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMessage {
    /// Sender: a file follows. A header whose name is not a plain file name, or of a version
    /// this side does not speak, is still a header, to be refused.
    Header(FileHeader),
    /// Receiver, version 2: it already holds the file's first `offset` bytes, whose SHA-256 is
    /// `sha256`, and takes chunks of at most `max_chunk` bytes.
    Ready {
        /// Bytes held from an earlier transfer.
        offset: u64,
        /// Their SHA-256, lowercase hex.
        sha256: String,
        /// The largest chunk it takes.
        max_chunk: u64,
    },
    /// Sender, version 2: the chunks that follow start at `offset` (the receiver's or 0).
    Data {
        /// Where the first chunk starts.
        offset: u64,
    },
    /// Sender, version 2: every chunk has been sent; the whole file's SHA-256.
    End {
        /// Lowercase hex.
        sha256: String,
    },
    /// Receiver: saved (under this name), or not and why.
    Result(Result<String, String>),
}

/// The most bytes of a refusal's reason sent: its message, JSON escapes included, stays
/// within the 1024 bytes of a message.
const MAX_WHY: usize = 160;

/// The SHA-256 of nothing: what a receiver holding no byte of a file announces.
#[cfg(test)]
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

impl FileMessage {
    /// The message as text.
    pub fn to_message(&self) -> String {
        match self {
            Self::Header(header) => header.to_message(),
            Self::Ready {
                offset,
                sha256,
                max_chunk,
            } => json!({ "acm-file-ready": { "offset": offset, "sha256": sha256, "max_chunk": max_chunk } })
                .to_string(),
            Self::Data { offset } => json!({ "acm-file-data": { "offset": offset } }).to_string(),
            Self::End { sha256 } => json!({ "acm-file-end": { "sha256": sha256 } }).to_string(),
            Self::Result(Ok(name)) => {
                json!({ "acm-file-result": { "saved": true, "name": name } }).to_string()
            }
            Self::Result(Err(why)) => {
                // Short enough that the message fits in one (`MSG-1`) whatever it quotes.
                let mut end = why.len().min(MAX_WHY);
                while !why.is_char_boundary(end) {
                    end -= 1;
                }
                json!({ "acm-file-result": { "saved": false, "why": &why[..end] } }).to_string()
            }
        }
    }

    /// The convention's message `text` is, if it is one: a JSON object with one of the
    /// convention's keys. Fields of the wrong type make it no message of the convention.
    pub fn parse(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        let object = value.as_object()?;
        if let Some(file) = object.get("acm-file") {
            let sha256 = match file.get("sha256") {
                Some(sum) => Some(hex_sha256(sum)?),
                None => None,
            };
            let version = match file.get("version") {
                Some(version) => version.as_u64()?,
                None => 1,
            };
            return Some(Self::Header(FileHeader {
                version,
                name: file.get("name")?.as_str()?.to_string(),
                length: file.get("length")?.as_u64()?,
                sha256,
            }));
        }
        if let Some(ready) = object.get("acm-file-ready") {
            return Some(Self::Ready {
                offset: ready.get("offset")?.as_u64()?,
                sha256: hex_sha256(ready.get("sha256")?)?,
                max_chunk: ready.get("max_chunk")?.as_u64()?,
            });
        }
        if let Some(data) = object.get("acm-file-data") {
            return Some(Self::Data {
                offset: data.get("offset")?.as_u64()?,
            });
        }
        if let Some(end) = object.get("acm-file-end") {
            return Some(Self::End {
                sha256: hex_sha256(end.get("sha256")?)?,
            });
        }
        let result = object.get("acm-file-result")?;
        if result.get("saved")?.as_bool()? {
            let name = result.get("name").and_then(Value::as_str).unwrap_or("");
            Some(Self::Result(Ok(name.to_string())))
        } else {
            let why = result
                .get("why")
                .and_then(Value::as_str)
                .unwrap_or("refused");
            Some(Self::Result(Err(why.to_string())))
        }
    }
}

/// A SHA-256 in hex (either case), as lowercase.
fn hex_sha256(value: &Value) -> Option<String> {
    let text = value.as_str()?;
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

/// How the names of partial files start.
pub const PARTIAL_PREFIX: &str = ".acm-partial-";

/// Whether `name` names a file in a directory, with no path in it.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.starts_with(PARTIAL_PREFIX)
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// A hash in lowercase hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 in lowercase hex.
#[cfg(test)]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hashes the first `length` bytes of `file` from its start, into `hasher`.
pub fn hash_prefix(file: &mut File, length: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut block = vec![0u8; READ_BLOCK];
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left.min(READ_BLOCK as u64)).unwrap_or(READ_BLOCK);
        let read = file.read(&mut block[..want])?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&block[..read]);
        left -= read as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_malformed_ones_are_none() {
        let messages = [
            FileMessage::Header(FileHeader::new("notes.txt", 5)),
            FileMessage::Header(FileHeader {
                version: 1,
                name: "a".into(),
                length: 1,
                sha256: Some(sha256_hex(b"x")),
            }),
            FileMessage::Ready {
                offset: 3,
                sha256: sha256_hex(b"abc"),
                max_chunk: 1 << 20,
            },
            FileMessage::Data { offset: 0 },
            FileMessage::End {
                sha256: EMPTY_SHA256.into(),
            },
            FileMessage::Result(Ok("notes (1).txt".into())),
            FileMessage::Result(Err("bad".into())),
        ];
        let long = FileMessage::Result(Err("\"é".repeat(1000))).to_message();
        assert!(long.len() <= 1024, "{}", long.len());
        for message in messages {
            let text = message.to_message();
            assert!(text.len() <= 1024, "{text}");
            assert_eq!(FileMessage::parse(&text), Some(message), "{text}");
        }
        for bad in [
            "hello",
            "[1]",
            r#"{"acm-file":{"name":"a","length":-1}}"#,
            r#"{"acm-file":{"name":"a","length":1,"version":"2"}}"#,
            r#"{"acm-file-end":{"sha256":"abc"}}"#,
            r#"{"acm-file-data":{}}"#,
        ] {
            assert_eq!(FileMessage::parse(bad), None, "{bad}");
        }
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    }
}

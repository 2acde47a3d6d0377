//! The app-level convention of `acm send` and `acm listen --save-dir` (README, "Sending a
//! file"): a session's first message announces the file as JSON, then one `send_data` carries
//! its bytes, and the receiver answers with a message saying whether it saved them. Also the
//! progress meter both ends print.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::Out;

/// What the first message of a file transfer announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// The file's name, without any directory.
    pub name: String,
    /// Its length in bytes.
    pub length: u64,
    /// The SHA-256 of its bytes, in lowercase hex.
    pub sha256: String,
}

impl FileHeader {
    /// The header of `bytes` named `name`.
    pub fn of(name: &str, bytes: &[u8]) -> Self {
        Self {
            name: name.to_string(),
            length: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }

    /// The message that announces the file.
    pub fn to_message(&self) -> String {
        json!({ "acm-file": { "name": self.name, "length": self.length, "sha256": self.sha256 } })
            .to_string()
    }

    /// The header a message announces, if it is one with a plain file name.
    pub fn from_message(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        let file = value.get("acm-file")?;
        let name = file.get("name")?.as_str()?.to_string();
        if !is_plain_name(&name) {
            return None;
        }
        Some(Self {
            name,
            length: file.get("length")?.as_u64()?,
            sha256: file.get("sha256")?.as_str()?.to_ascii_lowercase(),
        })
    }
}

/// Whether `name` names a file in a directory, with no path in it.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// The receiver's answer: `Ok(())` when saved, `Err(why)` otherwise.
pub fn result_message(result: &Result<PathBuf, String>) -> String {
    match result {
        Ok(_) => json!({ "acm-file-result": { "saved": true } }).to_string(),
        Err(why) => json!({ "acm-file-result": { "saved": false, "why": why } }).to_string(),
    }
}

/// The answer a message carries, if it is one.
pub fn parse_result(text: &str) -> Option<Result<(), String>> {
    let value: Value = serde_json::from_str(text).ok()?;
    let result = value.get("acm-file-result")?;
    if result.get("saved")?.as_bool()? {
        Some(Ok(()))
    } else {
        let why = result
            .get("why")
            .and_then(Value::as_str)
            .unwrap_or("refused");
        Some(Err(why.to_string()))
    }
}

/// SHA-256 in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks `bytes` against `header` and writes them to `dir` atomically: into a temporary file
/// beside the target, then renamed over it. Returns the file's path, or why not.
pub fn save(dir: &Path, header: &FileHeader, bytes: &[u8]) -> Result<PathBuf, String> {
    if bytes.len() as u64 != header.length {
        return Err(format!(
            "length mismatch: {} bytes announced, {} received",
            header.length,
            bytes.len()
        ));
    }
    let sum = sha256_hex(bytes);
    if sum != header.sha256 {
        return Err(format!(
            "checksum mismatch: sha256 {} announced, {sum} received",
            header.sha256
        ));
    }
    let target = dir.join(&header.name);
    let temp = dir.join(format!(
        ".{}.acm-partial-{}",
        header.name,
        std::process::id()
    ));
    let written = std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, &target));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(format!("cannot write {}: {err}", target.display()));
    }
    Ok(target)
}

/// A progress line for people (on stderr, redrawn in place) or JSON progress objects.
#[derive(Debug)]
pub struct Meter {
    out: Out,
    direction: &'static str,
    name: String,
    total: u64,
    start: Instant,
    last: Option<Instant>,
}

/// How often the meter redraws at most.
const REDRAW: Duration = Duration::from_millis(200);

impl Meter {
    /// A meter for `name`, `direction` being "sending" or "receiving".
    pub fn new(out: Out, direction: &'static str, name: &str, total: u64) -> Self {
        Self {
            out,
            direction,
            name: name.to_string(),
            total,
            start: Instant::now(),
            last: None,
        }
    }

    /// `done` bytes of the total have moved.
    pub fn update(&mut self, done: u64) {
        let now = Instant::now();
        let finished = done >= self.total;
        if !finished && self.last.is_some_and(|last| now - last < REDRAW) {
            return;
        }
        self.last = Some(now);
        let elapsed = (now - self.start).as_secs_f64().max(1e-3);
        let rate = done as f64 / elapsed;
        let eta = if rate > 0.0 {
            (self.total.saturating_sub(done)) as f64 / rate
        } else {
            f64::INFINITY
        };
        if self.out.json {
            self.out.line(
                "progress",
                json!({
                    "direction": self.direction,
                    "name": self.name,
                    "bytes": done,
                    "total": self.total,
                    "bytes_per_second": rate.round(),
                    "eta_seconds": if eta.is_finite() { Some(eta.ceil()) } else { None },
                }),
                String::new,
            );
            return;
        }
        let percent = if self.total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / self.total as f64
        };
        let eta = if eta.is_finite() {
            format!("{:.0}s", eta.ceil())
        } else {
            "?".into()
        };
        eprint!(
            "\r{} {}: {} / {} ({percent:.0}%), {}/s, ETA {eta}   {}",
            self.direction,
            self.name,
            size(done),
            size(self.total),
            size(rate as u64),
            if finished { "\n" } else { "" }
        );
    }

    /// Ends the line of a meter cut short.
    pub fn abandon(&self) {
        if !self.out.json && self.last.is_some() {
            eprintln!();
        }
    }
}

/// Bytes for people.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips_and_paths_are_refused() {
        let header = FileHeader::of("notes.txt", b"hello");
        assert_eq!(FileHeader::from_message(&header.to_message()), Some(header));
        let evil = FileHeader::of("../etc/passwd", b"x").to_message();
        assert_eq!(FileHeader::from_message(&evil), None);
        assert_eq!(FileHeader::from_message("hello"), None);
    }

    #[test]
    fn a_file_that_does_not_verify_is_not_written() {
        let dir = std::env::temp_dir().join(format!("acm-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = FileHeader::of("a.bin", b"abc");
        assert!(save(&dir, &header, b"abd").is_err());
        assert!(save(&dir, &header, b"ab").is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let path = save(&dir, &header, b"abc").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"abc");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn results_round_trip() {
        assert_eq!(
            parse_result(&result_message(&Ok(PathBuf::new()))),
            Some(Ok(()))
        );
        assert_eq!(
            parse_result(&result_message(&Err("bad".into()))),
            Some(Err("bad".into()))
        );
    }
}

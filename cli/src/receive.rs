//! The receiving end of the file convention (SPEC section 18): a partial file written chunk by
//! chunk, kept for a later resume, and renamed into place once its length and SHA-256 match.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::transfer::{
    CACHE_PIECE, FileHeader, FileMessage, PARTIAL_PREFIX, VERSION, hash_prefix, hex, is_plain_name,
};

/// The partial files being written now, so that two transfers of the same file (from the same
/// device) do not write one at once.
#[derive(Debug, Clone, Default)]
pub struct Claims(Arc<Mutex<HashSet<PathBuf>>>);

/// A partial file claimed: released when dropped.
#[derive(Debug)]
pub struct Claim {
    claims: Claims,
    path: PathBuf,
}

impl Claims {
    /// Whether a transfer writes `path` now.
    fn is_claimed(&self, path: &Path) -> bool {
        self.0.lock().map_or(true, |held| held.contains(path))
    }

    fn claim(&self, path: &Path) -> Option<Claim> {
        let mut held = self.0.lock().ok()?;
        held.insert(path.to_path_buf()).then(|| Claim {
            claims: self.clone(),
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut held) = self.claims.0.lock() {
            held.remove(&self.path);
        }
    }
}

/// How long a partial file that nothing wrote to is kept for a resume: older ones are deleted
/// when `acm listen --save-dir` starts and whenever a file is announced.
pub const PARTIAL_KEPT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Deletes the partial files in `dir` last written more than `kept` before `now`, except those
/// being written; returns how many went. A file that cannot be read or deleted stays.
pub fn sweep_partials(dir: &Path, claims: &Claims, kept: Duration, now: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(PARTIAL_PREFIX)) {
            continue;
        }
        let stale = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|metadata| metadata.modified().ok())
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > kept);
        let path = entry.path();
        if stale && !claims.is_claimed(&path) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Where a receiver keeps what it holds of the file `name` of `length` bytes between
/// transfers: a hidden name in the save directory, the same for every transfer of a file of
/// that name and length. It does not depend on the sending device, whose id may change from
/// one run to the next (`acm send` takes a new one each time unless told `--device-id`): the
/// sender's check of what is held, by its SHA-256, is what makes resuming safe.
pub fn partial_name(name: &str, length: u64) -> String {
    let key = Sha256::digest(format!("{name}\0{length}"));
    format!("{PARTIAL_PREFIX}{}", &hex(&key)[..32])
}

/// The receiving end of one file: what it holds so far, written to a partial file (or, with no
/// directory, only counted and hashed).
#[derive(Debug)]
pub struct Inbound {
    header: FileHeader,
    /// The partial file, its path and its claim; none when only verifying.
    file: Option<(File, PathBuf, Claim)>,
    hasher: Sha256,
    have: u64,
    /// Whether the chunks have started (`acm-file-data`, or at once in version 1).
    started: bool,
}

impl Inbound {
    /// Takes the transfer `header` announces, with a partial file in `dir`, or
    /// only verified when `dir` is `None`. A partial file left by an earlier transfer of the
    /// same file is read and hashed, to be offered for resuming (version 2). Fails with why the
    /// file is refused.
    pub fn open(header: FileHeader, dir: Option<&Path>, claims: &Claims) -> Result<Self, String> {
        if header.version != 1 && header.version != VERSION {
            return Err(format!(
                "version {} of the acm-file convention is not spoken here (1 and {VERSION} are)",
                header.version
            ));
        }
        if header.version == 1 && header.sha256.is_none() {
            return Err("a version 1 header needs its sha256".into());
        }
        if !is_plain_name(&header.name) {
            return Err(format!("{:?} is not a plain file name", header.name));
        }
        let mut inbound = Self {
            started: header.version == 1,
            header,
            file: None,
            hasher: Sha256::new(),
            have: 0,
        };
        let Some(dir) = dir else {
            return Ok(inbound);
        };
        let path = dir.join(partial_name(&inbound.header.name, inbound.header.length));
        let claim = claims
            .claim(&path)
            .ok_or_else(|| format!("{} is being received already", inbound.header.name))?;
        let cannot = |err: std::io::Error| format!("cannot write {}: {err}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(cannot)?;
        let held = file.metadata().map_err(cannot)?.len();
        if inbound.header.version == 1 || held > inbound.header.length {
            file.set_len(0).map_err(cannot)?;
        } else if held > 0 && hash_prefix(&mut file, held, &mut inbound.hasher).is_ok() {
            inbound.have = held;
        } else {
            file.set_len(0).map_err(cannot)?;
            inbound.hasher = Sha256::new();
        }
        inbound.file = Some((file, path, claim));
        Ok(inbound)
    }

    /// The file's header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Bytes held.
    pub fn have(&self) -> u64 {
        self.have
    }

    /// The version 2 answer to the header: what is held, and the largest chunk taken.
    pub fn ready(&self, max_chunk: u64) -> FileMessage {
        FileMessage::Ready {
            offset: self.have,
            sha256: hex(&self.hasher.clone().finalize()),
            max_chunk,
        }
    }

    /// `acm-file-data`: the chunks start at `offset`, which must be what is held (a resume) or
    /// 0 (starting over, what is held being dropped).
    pub fn start(&mut self, offset: u64) -> Result<(), String> {
        if self.started {
            return Err("acm-file-data came twice".into());
        }
        if offset != 0 && offset != self.have {
            return Err(format!(
                "the chunks would start at {offset}, but {} bytes are held",
                self.have
            ));
        }
        if let Some((file, path, _)) = &mut self.file {
            let placed = if offset == 0 {
                file.set_len(0).and_then(|()| file.seek(SeekFrom::Start(0)))
            } else {
                file.seek(SeekFrom::Start(offset))
            };
            placed.map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        }
        if offset == 0 {
            self.hasher = Sha256::new();
        }
        self.have = offset;
        self.started = true;
        Ok(())
    }

    /// A chunk: written and hashed. Fails on a chunk before `acm-file-data` or past the
    /// announced length.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), String> {
        if !self.started {
            return Err("data came before acm-file-data".into());
        }
        let after = self.have.saturating_add(chunk.len() as u64);
        if after > self.header.length {
            return Err(format!(
                "length mismatch: {} bytes announced, more received",
                self.header.length
            ));
        }
        // Piece by piece, each hashed and then written while it is still in the processor's
        // cache: the chunk is read from memory once, not twice. (Hashing the chunk on another
        // thread while this one writes it made the copy into the page cache, which then reads
        // the chunk from memory, cost more than the hash saved.)
        for piece in chunk.chunks(CACHE_PIECE) {
            self.hasher.update(piece);
            if let Some((file, path, _)) = &mut self.file {
                file.write_all(piece)
                    .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
            }
        }
        if let Some((file, _, _)) = &self.file {
            start_writeback(file, self.have, chunk.len());
        }
        self.have = after;
        Ok(())
    }

    /// Whether a version 1 transfer has all its bytes (it has no end message).
    pub fn v1_complete(&self) -> bool {
        self.header.version == 1 && self.have == self.header.length
    }

    /// The end: checks the length and `sha256` (the announced one in version 1) and puts the
    /// file in place, beside any file of the same name unless `overwrite`. Returns the name it
    /// was saved under (with no directory: the name announced), or why not; a file that does
    /// not verify leaves nothing behind, not even its partial file.
    pub fn finish(self, sha256: Option<&str>, overwrite: bool) -> Result<String, String> {
        let Self {
            header,
            file,
            hasher,
            have,
            ..
        } = self;
        let discard = |file: Option<(File, PathBuf, Claim)>| {
            if let Some((file, path, _claim)) = file {
                drop(file);
                let _ = std::fs::remove_file(path);
            }
        };
        if have != header.length {
            discard(file);
            return Err(format!(
                "length mismatch: {} bytes announced, {have} received",
                header.length
            ));
        }
        let expected = sha256.or(header.sha256.as_deref()).unwrap_or_default();
        let sum = hex(&hasher.finalize());
        if sum != expected {
            discard(file);
            return Err(format!(
                "checksum mismatch: sha256 {expected} announced, {sum} received"
            ));
        }
        let Some((file, path, _claim)) = file else {
            return Ok(header.name);
        };
        let flushed = file.sync_data();
        drop(file);
        let placed = flushed.and_then(|()| {
            place(
                &path,
                path.parent().unwrap_or(Path::new(".")),
                &header.name,
                overwrite,
            )
        });
        match placed {
            Ok(name) => Ok(name),
            Err(err) => {
                let _ = std::fs::remove_file(&path);
                Err(format!("cannot save {}: {err}", header.name))
            }
        }
    }

    /// A transfer cut short: the partial file stays for a later resume (version 2), or goes
    /// (version 1, which cannot resume).
    pub fn abandon(self) {
        if self.header.version == 1
            && let Some((file, path, _claim)) = self.file
        {
            drop(file);
            let _ = std::fs::remove_file(path);
        }
    }

    /// A transfer refused midway: nothing of it is kept.
    pub fn discard(self) {
        if let Some((file, path, _claim)) = self.file {
            drop(file);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts writing the `len` bytes of `file` from `offset` to the disk, without waiting for
/// them: the `fdatasync` that ends a transfer then finds little left to write, where it would
/// otherwise write the whole file after its last byte arrived (a file smaller than the
/// system's dirty-page threshold is not written back before). Where the system does not
/// offer it, or it fails, the pages are written at the end as before.
fn start_writeback(file: &File, offset: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        // POSIX_FADV_DONTNEED starts the writeback of the range's dirty pages (and drops the
        // pages already written, which this file is not read back from).
        let len = std::num::NonZeroU64::new(len as u64);
        let _ = rustix::fs::fadvise(file, offset, len, rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// `name` with ` (n)` before its extension: `notes (1).txt`.
fn numbered(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Moves `from` into `dir` as `name`, or when a file of that name exists (and not
/// `overwrite`) as the first free `name (n).ext`; never replaces a file that appeared meanwhile
/// where the file system has hard links. Returns the name used.
fn place(from: &Path, dir: &Path, name: &str, overwrite: bool) -> std::io::Result<String> {
    if overwrite {
        std::fs::rename(from, dir.join(name))?;
        return Ok(name.to_string());
    }
    for n in 0..10_000 {
        let candidate = if n == 0 {
            name.to_string()
        } else {
            numbered(name, n)
        };
        let target = dir.join(&candidate);
        match std::fs::hard_link(from, &target) {
            Ok(()) => {
                std::fs::remove_file(from)?;
                return Ok(candidate);
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) if target.symlink_metadata().is_ok() => {}
            Err(_) => {
                std::fs::rename(from, &target)?;
                return Ok(candidate);
            }
        }
    }
    Err(std::io::Error::other("no free name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::{EMPTY_SHA256, sha256_hex};

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("acm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_that_does_not_verify_leaves_nothing() {
        let dir = dir("mismatch");
        let claims = Claims::default();
        let mut inbound = Inbound::open(FileHeader::new("a.bin", 3), Some(&dir), &claims).unwrap();
        inbound.start(0).unwrap();
        inbound.write(b"abd").unwrap();
        assert!(inbound.finish(Some(&sha256_hex(b"abc")), false).is_err());
        assert!(names(&dir).is_empty());
        let mut inbound = Inbound::open(FileHeader::new("a.bin", 3), Some(&dir), &claims).unwrap();
        inbound.start(0).unwrap();
        assert!(inbound.write(b"abcd").is_err());
        assert!(inbound.start(0).is_err(), "acm-file-data comes once");
        inbound.discard();
        assert!(names(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_partial_file_is_offered_again_and_a_second_file_keeps_the_first() {
        let dir = dir("resume");
        let claims = Claims::default();
        let header = FileHeader::new("a.txt", 6);
        let mut first = Inbound::open(header.clone(), Some(&dir), &claims).unwrap();
        assert_eq!(
            first.ready(9),
            FileMessage::Ready {
                offset: 0,
                sha256: EMPTY_SHA256.into(),
                max_chunk: 9
            }
        );
        // The same file from the same device cannot be received twice at once.
        assert!(Inbound::open(header.clone(), Some(&dir), &claims).is_err());
        first.start(0).unwrap();
        first.write(b"abcd").unwrap();
        first.abandon();

        let mut again = Inbound::open(header.clone(), Some(&dir), &claims).unwrap();
        assert_eq!(
            again.ready(9),
            FileMessage::Ready {
                offset: 4,
                sha256: sha256_hex(b"abcd"),
                max_chunk: 9
            }
        );
        assert!(again.start(2).is_err(), "only what is held or 0");
        again.abandon();
        let mut again = Inbound::open(header.clone(), Some(&dir), &claims).unwrap();
        again.start(4).unwrap();
        again.write(b"ef").unwrap();
        let sum = sha256_hex(b"abcdef");
        assert_eq!(again.finish(Some(&sum), false), Ok("a.txt".into()));
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"abcdef");

        let mut second = Inbound::open(header, Some(&dir), &claims).unwrap();
        assert_eq!(second.have(), 0, "the saved file is no partial one");
        second.start(0).unwrap();
        second.write(b"ghijkl").unwrap();
        let sum = sha256_hex(b"ghijkl");
        assert_eq!(second.finish(Some(&sum), false), Ok("a (1).txt".into()));
        assert_eq!(names(&dir), ["a (1).txt", "a.txt"]);
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"abcdef");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stale_partial_files_go_and_recent_or_claimed_ones_stay() {
        let dir = dir("sweep");
        let claims = Claims::default();
        let day = Duration::from_secs(24 * 60 * 60);
        let now = SystemTime::now();
        let made = |name: &str, age: Duration| {
            let file = File::create(dir.join(name)).unwrap();
            file.set_modified(now - age).unwrap();
        };
        made(&partial_name("old.bin", 1), 8 * day);
        made(&partial_name("recent.bin", 1), day);
        made(&partial_name("busy.bin", 1), 8 * day);
        made("old-but-mine.txt", 30 * day);
        let _busy = claims
            .claim(&dir.join(partial_name("busy.bin", 1)))
            .unwrap();
        assert_eq!(sweep_partials(&dir, &claims, PARTIAL_KEPT, now), 1);
        let mut left = vec![
            partial_name("recent.bin", 1),
            partial_name("busy.bin", 1),
            "old-but-mine.txt".to_string(),
        ];
        left.sort();
        assert_eq!(names(&dir), left);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("a.txt", 1), "a (1).txt");
        assert_eq!(numbered("archive", 2), "archive (2)");
        assert_eq!(numbered(".profile", 1), ".profile (1)");
    }

    #[test]
    fn paths_and_unknown_versions_are_refused() {
        let claims = Claims::default();
        for name in ["../etc/passwd", "a/b", "", "..", ".acm-partial-0"] {
            let header = FileHeader::new(name, 1);
            assert!(Inbound::open(header, None, &claims).is_err(), "{name}");
        }
        let mut header = FileHeader::new("a", 1);
        header.version = 3;
        assert!(Inbound::open(header, None, &claims).is_err());
    }
}

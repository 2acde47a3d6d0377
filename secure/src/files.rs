//! Private files: key and trust store files that only their owner may read (`SEC-12`).

use std::io::Write;
use std::path::Path;

use crate::SecureError;

fn file_error(path: &Path, source: std::io::Error) -> SecureError {
    SecureError::File {
        path: path.display().to_string(),
        source,
    }
}

/// The file's text.
pub(crate) fn read(path: &Path) -> Result<String, SecureError> {
    std::fs::read_to_string(path).map_err(|e| file_error(path, e))
}

/// Makes the folder of `path`, owner-only, if missing (another process may make it at the same
/// time).
fn make_folder(path: &Path) -> Result<(), SecureError> {
    if let Some(dir) = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty() && !dir.exists())
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| file_error(dir, e))?;
    }
    Ok(())
}

/// Writes `text` to `path` atomically (a new file beside it, renamed over it), readable and
/// writable by its owner only (mode 0600 on Unix); makes the folder, owner-only, if missing.
/// Writers in other threads or processes never share the new file: the last rename wins.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), SecureError> {
    let temporary = write_beside(path, text)?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        file_error(path, e)
    })
}

/// Writes `text` to `path` only if there is no file there yet, atomically (the file appears
/// whole or not at all). Returns whether it wrote it: `false` when another thread or process
/// made the file first, which then stays as it is.
pub(crate) fn create_private(path: &Path, text: &str) -> Result<bool, SecureError> {
    let temporary = write_beside(path, text)?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(file_error(path, e)),
    }
}

/// Holds the lock of `path`'s writers (an exclusive lock on `PATH.lock` beside it, on Unix), so
/// that a read, change and write of the file by one process is not interleaved with another's.
/// The lock goes when the returned file is dropped.
pub(crate) fn lock_for_writing(path: &Path) -> Result<std::fs::File, SecureError> {
    make_folder(path)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let lock_path = path.with_file_name(name);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&lock_path)
        .map_err(|e| file_error(&lock_path, e))?;
    #[cfg(unix)]
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| file_error(&lock_path, e.into()))?;
    Ok(file)
}

/// A new owner-only file beside `path`, of a name no other writer uses, holding `text`.
fn write_beside(path: &Path, text: &str) -> Result<std::path::PathBuf, SecureError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    make_folder(path)?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{}-{n}.new", std::process::id()));
    let temporary = path.with_file_name(name);
    let written = write_new(&temporary, text);
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map(|()| temporary)
}

/// Writes `text` to the owner-only file `temporary`, synced.
fn write_new(temporary: &Path, text: &str) -> Result<(), SecureError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(temporary)
        .map_err(|e| file_error(temporary, e))?;
    // A file that existed with wider permissions keeps them through `open`: narrow them.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| file_error(temporary, e))?;
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(temporary, e))
}

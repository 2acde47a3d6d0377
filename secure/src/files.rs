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

/// Writes `text` to `path` atomically (a new file beside it, renamed over it), readable and
/// writable by its owner only (mode 0600 on Unix); makes the folder, owner-only, if missing.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), SecureError> {
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
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let temporary = path.with_file_name(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temporary)
        .map_err(|e| file_error(&temporary, e))?;
    // A file that existed with wider permissions keeps them through `open`: narrow them.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| file_error(&temporary, e))?;
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| file_error(path, e))
}

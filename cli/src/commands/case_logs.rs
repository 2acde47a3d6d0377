//! The logs of `acm conformance`, kept apart case by case. Many cases send invalid input on
//! purpose, and the implementation under test rightly logs a warning for each: printed as they
//! come, those lines would bury the verdicts. Once the command calls [`CaseLogs::keep`],
//! everything logged (at the level `-v` or `RUST_LOG` asks) goes to a buffer instead of
//! stderr; after each case, what the buffer holds is that case's, shown under its verdict when
//! it failed or with `-v`, and forgotten otherwise.
//!
//! The cases run one after the other, so what was logged since the previous case ended belongs
//! to the case that ends next, whichever thread or task logged it.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::EitherWriter;

/// The buffer that [`LogOutput`] writes to, once a command keeps its logs.
static KEPT: OnceLock<CaseLogs> = OnceLock::new();

/// Where the command's logs go: stderr, or the buffer of [`CaseLogs::keep`].
#[derive(Debug, Clone, Copy)]
pub struct LogOutput;

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = EitherWriter<Appender<'a>, std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        match KEPT.get() {
            Some(logs) => EitherWriter::A(logs.make_writer()),
            None => EitherWriter::B(std::io::stderr()),
        }
    }
}

/// A buffer of logs, shared by the writer and the command.
#[derive(Debug, Clone, Default)]
pub struct CaseLogs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl CaseLogs {
    /// From now on, the logs go to the buffer this returns instead of stderr.
    pub fn keep() -> Self {
        KEPT.get_or_init(Self::default).clone()
    }

    /// What was logged since the last call, as text.
    pub fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.lock());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A thread that panicked while logging leaves whole lines or a part of one: keep them.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One event's line being written to the buffer.
pub struct Appender<'a>(MutexGuard<'a, Vec<u8>>);

impl Write for Appender<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CaseLogs {
    type Writer = Appender<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Appender(self.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_take_returns_what_was_written_since_the_last_one() {
        let logs = CaseLogs::default();
        let _ = logs.make_writer().write_all(b"first case\n");
        let _ = logs.make_writer().write_all(b"still the first\n");
        assert_eq!(logs.take(), "first case\nstill the first\n");
        assert_eq!(logs.take(), "");
        let _ = logs.make_writer().write_all(b"second \xff case\n");
        assert_eq!(logs.take(), "second \u{fffd} case\n");
    }
}

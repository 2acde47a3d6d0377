//! What the suite can learn of the implementation's memory: nothing from the wire, but an
//! implementation may write a line of statistics to a file the suite reads (`acm peer
//! --report-memory FILE` does), and the suite follows its peak during each attack.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often the statistics are read during an attack.
const EVERY: Duration = Duration::from_millis(50);

/// One reading of a process's memory, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Resident memory now.
    pub rss_kib: u64,
    /// The most resident memory since the process started.
    pub peak_kib: u64,
}

impl Reading {
    /// The line a process writes for the suite: `rss_kib=N peak_kib=N`, then any other fields.
    pub fn line(&self, extra: &str) -> String {
        format!(
            "rss_kib={} peak_kib={} {extra}",
            self.rss_kib, self.peak_kib
        )
    }

    /// Reads a line [`Reading::line`] made.
    pub fn parse(line: &str) -> Option<Self> {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some(Self {
            rss_kib: field("rss_kib")?,
            peak_kib: field("peak_kib")?,
        })
    }

    /// A process's memory from its `/proc/PID/status` (`VmRSS`, `VmHWM`); `None` where there
    /// is no such file (not Linux, or the process is gone).
    pub fn of_process(status: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(status).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some(Self {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    /// This process's memory.
    pub fn of_self() -> Option<Self> {
        Self::of_process(Path::new("/proc/self/status"))
    }
}

/// Where the implementation's statistics are: a file it rewrites with one [`Reading::line`].
#[derive(Debug, Clone)]
pub struct MemorySource {
    path: PathBuf,
}

impl MemorySource {
    /// Statistics read from the file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The latest reading, if the file holds one.
    pub fn read(&self) -> Option<Reading> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        text.lines().rev().find_map(Reading::parse)
    }

    /// Follows the resident memory until the [`Watch`] is finished.
    pub fn watch(&self) -> Watch {
        let peak = Arc::new(AtomicU64::new(0));
        let before = self.read();
        let source = self.clone();
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(reading) = source.read() {
                    seen.fetch_max(reading.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        Watch {
            source: self.clone(),
            before,
            peak,
            task,
        }
    }
}

/// The implementation's memory followed during an attack.
#[derive(Debug)]
pub struct Watch {
    source: MemorySource,
    before: Option<Reading>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// The implementation's resident memory around an attack, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Before it.
    pub before_kib: u64,
    /// The most seen during it.
    pub peak_kib: u64,
    /// Once it stopped.
    pub after_kib: u64,
}

impl Watch {
    /// Stops following; `None` when the implementation wrote no statistics.
    pub fn finish(self) -> Option<Span> {
        self.task.abort();
        let after = self.source.read()?;
        let before = self.before?;
        let peak = self.peak.load(Ordering::Relaxed).max(after.rss_kib);
        Some(Span {
            before_kib: before.rss_kib,
            peak_kib: peak,
            after_kib: after.rss_kib,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_back_and_other_fields_are_skipped() {
        let reading = Reading {
            rss_kib: 1234,
            peak_kib: 5678,
        };
        let line = reading.line("data_bytes=9");
        assert_eq!(Reading::parse(&line), Some(reading));
        assert_eq!(Reading::parse("rss_kib=1"), None);
        assert_eq!(Reading::parse("rss_kib=x peak_kib=2"), None);
    }

    #[test]
    fn this_process_has_a_resident_size_on_linux() {
        if let Some(me) = Reading::of_self() {
            assert!(me.rss_kib > 0 && me.peak_kib >= me.rss_kib);
        }
    }
}

//! `acm conformance --target ... --robustness`: the robustness suite against an implementation
//! over TCP; and what `acm peer --report-memory` writes for it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use acm::Device;
use acm::secure::SecureConfig;
use acm_conformance::Report;
use acm_conformance::robustness::attack::Field;
use acm_conformance::robustness::memory::{MemorySource, Reading};
use acm_conformance::robustness::{RobustnessConfig, Served, run_robustness_suite};

use super::progress::Progress;

/// How often `acm peer --report-memory` rewrites its statistics.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// Runs the robustness suite against the implementation at `addr`, printing each case and the
/// table of the well-behaved client's times, and returns the report.
pub async fn run(
    addr: SocketAddr,
    insecure: bool,
    filter: &str,
    memory_from: Option<&Path>,
    progress: &mut Progress,
) -> Result<Report, String> {
    let security = if insecure {
        None
    } else {
        Some(SecureConfig::ephemeral().map_err(|e| e.to_string())?)
    };
    let field = Field::discover(addr, security).await?;
    let config = RobustnessConfig {
        field,
        memory: memory_from.map(MemorySource::file),
        filter: filter.to_string(),
    };
    let mut lines = Vec::new();
    let (report, _) = run_robustness_suite(&config, |result, served: &Served| {
        progress.case(result);
        lines.push(served.line());
    })
    .await;
    println!();
    println!("{}", Served::heading());
    for line in lines {
        println!("{line}");
    }
    if memory_from.is_none() {
        println!("(the target's memory is shown when it writes statistics: --memory-from FILE)");
    }
    Ok(report)
}

/// Rewrites `path` with the device's memory every [`REPORT_EVERY`], for as long as the
/// runtime runs: the process's resident memory and its peak, the data its budget holds and the
/// bytes of buffers the device keeps for reuse (the rest of what stays resident once links
/// have gone is the allocator's).
pub fn report_memory(device: &Device, path: PathBuf) {
    let device = device.clone();
    tokio::spawn(async move {
        let partial = path.with_extension("partial");
        loop {
            if let Some(reading) = Reading::of_self() {
                // The budget counts the pool's buffers too: the data is the rest.
                let pool = device.receive_pool().kept_bytes() as u64;
                let line = reading.line(&format!(
                    "data_bytes={} pool_bytes={pool}",
                    device.memory_in_use().saturating_sub(pool),
                ));
                // Whole lines only: the reader never sees one half written.
                if std::fs::write(&partial, format!("{line}\n")).is_ok() {
                    let _ = std::fs::rename(&partial, &path);
                }
            }
            tokio::time::sleep(REPORT_EVERY).await;
        }
    });
}

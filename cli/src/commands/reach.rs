//! Where `acm conformance --target` reaches the implementation under test, and how `acm peer`
//! is reached: over TCP (SPEC section 14) or Bluetooth LE (section 13).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acm::secure::SecureConfig;
use acm::transport::DeviceId;
use acm_conformance::profile::Timers;
use acm_conformance::wire::DialTarget;
use acm_transport_ble::BleTransport;

use crate::common::{ble_transport, tcp_address};

/// The implementation under test, as `--target` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `tcp://HOST:PORT`.
    Tcp(SocketAddr),
    /// `ble:DEVICE-ID`: a device advertising over Bluetooth LE, found by scanning.
    Ble(DeviceId),
}

impl Target {
    /// Reads `--target`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(id) = text.strip_prefix("ble:") {
            return DeviceId::new(id)
                .map(Self::Ble)
                .map_err(|e| format!("--target {text:?}: bad device id: {e}"));
        }
        if text.starts_with("tcp://") {
            return tcp_address(text).map(Self::Tcp);
        }
        Err(format!(
            "--target {text:?} is neither tcp://HOST:PORT nor ble:DEVICE-ID"
        ))
    }
}

/// The Bluetooth controller options shared by `acm conformance` and `acm peer`.
#[derive(Debug, Clone, clap::Args)]
pub struct HciArgs {
    /// With a Bluetooth LE target or `--transport ble`: the controller, tcp://HOST:PORT for one
    /// that serves HCI over TCP (a virtual controller such as Rootcanal), serial:/dev/ttyXXX or
    /// a plain path for a serial (UART) one.
    #[arg(long, value_name = "tcp://HOST:PORT|serial:PATH")]
    pub hci: Option<String>,
    /// With Bluetooth LE: write every HCI packet between this host and its controller to FILE,
    /// as a btsnoop log (Wireshark and `btmon -r` read it).
    #[arg(long, value_name = "FILE")]
    pub hci_log: Option<PathBuf>,
}

impl HciArgs {
    /// Refuses the options when the transport is not Bluetooth LE.
    pub fn refuse(&self, why: &str) -> Result<(), String> {
        if self.hci.is_some() || self.hci_log.is_some() {
            return Err(format!("--hci and --hci-log go with {why}"));
        }
        Ok(())
    }

    /// Starts a Bluetooth LE transport as device `id` on the controller `--hci` names; one that
    /// `accepts` advertises its id, which must then fit an advertisement.
    pub async fn start(&self, id: DeviceId, accepts: bool) -> Result<BleTransport, String> {
        ble_transport(self.hci.as_deref(), self.hci_log.as_deref(), id, accepts)
            .await
            .map_err(|e| e.message)
    }
}

/// How long one case may take over Bluetooth LE, whose links carry some tens of KiB a second
/// and take tens of milliseconds a round trip: the cases that make a thousand requests need
/// minutes.
const BLE_CASE_LIMIT: Duration = Duration::from_secs(300);

/// How long a Bluetooth LE binding may take to end a link it closes while the suite reads
/// nothing: up to 5 s for its CLOSE, which gets no credit, then 5 s for the suite to take the
/// channel down (SPEC `BLE-6`), after which it does so itself.
const BLE_CLOSE_ALLOWANCE: Duration = Duration::from_secs(10);

/// How long the suite waits after each case over Bluetooth LE, for the links the case dropped
/// to go down on the target's side.
const BLE_SETTLE: Duration = Duration::from_millis(500);

/// The suite's way to a Bluetooth LE target, and the runtime its Bluetooth host runs on, which
/// must outlive every use of the target.
pub struct BleSuite {
    /// The runtime of the suite's Bluetooth host.
    pub runtime: tokio::runtime::Runtime,
    /// The target.
    pub target: Arc<DialTarget>,
}

/// What the suite needs to reach a target over Bluetooth LE.
pub struct BleSuiteOptions<'a> {
    /// The controller.
    pub hci: &'a HciArgs,
    /// The suite's own device id.
    pub suite: DeviceId,
    /// The target's.
    pub iut: DeviceId,
    /// The suite's secure identity; `None` for plain links.
    pub security: Option<SecureConfig>,
    /// Whether the target's transport carries data.
    pub carries_data: bool,
    /// The target's timers.
    pub timers: Timers,
}

impl BleSuite {
    /// Starts the suite's Bluetooth host (a dialer: it does not advertise) and reaches the
    /// target once, so that a target that cannot be found is said before any case runs.
    pub fn start(options: BleSuiteOptions<'_>) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("acm-ble-suite")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        let iut = options.iut.clone();
        let target = runtime.block_on(async {
            let transport = options.hci.start(options.suite, false).await?;
            let target = DialTarget::new(
                Arc::new(transport),
                tokio::runtime::Handle::current(),
                options.iut,
                options.security,
                "Bluetooth LE",
            )
            .carrying_data(options.carries_data)
            .with_timers(options.timers)
            .with_case_limit(BLE_CASE_LIMIT)
            .with_close_allowance(BLE_CLOSE_ALLOWANCE)
            .with_settle(BLE_SETTLE);
            target
                .probe()
                .await
                .map_err(|e| format!("cannot reach ble:{iut}: {e}"))?;
            Ok::<_, String>(target)
        })?;
        Ok(Self {
            runtime,
            target: Arc::new(target),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_tcp_addresses_or_ble_device_ids() {
        assert_eq!(
            Target::parse("tcp://127.0.0.1:7000"),
            Ok(Target::Tcp(SocketAddr::from(([127, 0, 0, 1], 7000))))
        );
        assert_eq!(
            Target::parse("ble:tablet"),
            Ok(Target::Ble(DeviceId::new("tablet").unwrap()))
        );
        let bad = Target::parse("tablet").unwrap_err();
        assert!(
            bad.contains("neither tcp://HOST:PORT nor ble:DEVICE-ID"),
            "{bad}"
        );
        assert!(Target::parse("ble:").unwrap_err().contains("bad device id"));
    }
}

//! The transport suite of acm-conformance over Bluetooth LE, against Rootcanal: every case
//! passes. Run with `--ignored` (see `.ci/ble`).

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use acm_conformance::transport_suite::{
    FactoryError, SuiteOptions, TransportFactory, TransportPair, run_transport_suite,
};
use acm_conformance::{Expectations, Verdict};
use acm_transport_ble::{BleConfig, BleTransport};
use async_trait::async_trait;
use common::{ControllerProcess, id, or_skip, rootcanal};

/// Two fresh BLE transports on one Rootcanal medium for each case, with ids never used before
/// (the medium remembers advertisers for a while).
struct BleFactory {
    controller: ControllerProcess,
    pairs: AtomicU32,
}

#[async_trait]
impl TransportFactory for BleFactory {
    fn name(&self) -> String {
        "acm-transport-ble on Rootcanal".into()
    }

    fn options(&self) -> SuiteOptions {
        SuiteOptions::new()
            .with_case_time_limit(Duration::from_secs(60))
            .with_many_frames(300)
            .with_backpressure(1 << 20, 4096)
            .with_stall(Duration::from_secs(1))
    }

    async fn pair(&self) -> Result<TransportPair, FactoryError> {
        let n = self.pairs.fetch_add(1, Ordering::SeqCst);
        let (phone, tablet) = (
            id(&format!("suite-phone-{n}")),
            id(&format!("suite-tablet-{n}")),
        );
        let phone = BleTransport::start(BleConfig::new(phone, self.controller.hci(0))).await?;
        let tablet_transport =
            BleTransport::start(BleConfig::new(tablet.clone(), self.controller.hci(0))).await?;
        Ok(TransportPair::new(phone, tablet_transport, tablet))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn the_transport_suite_passes_over_ble() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    let factory = BleFactory {
        controller,
        pairs: AtomicU32::new(0),
    };
    let report = run_transport_suite(&factory).await;
    println!("{}", report.summary());
    for result in &report.results {
        let verdict = match &result.verdict {
            Verdict::Unsupported(why) => format!("unsupported: {why}"),
            other => other.name().to_owned(),
        };
        println!("{:?} {}: {verdict}", result.elapsed, result.case.id);
    }
    let judgement = Expectations::default().judge(&report);
    assert!(judgement.ok(), "{judgement:?}\n{}", report.summary());
}

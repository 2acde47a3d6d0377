//! What a connection asks for once it is up (SPEC section 13.5) and what the virtual controllers
//! grant, read from the transport's report and from its HCI log, which Bumble's btsnoop reader
//! decodes. Run with `--ignored` (see `.ci/ble`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use acm_transport::{Link, Transport};
use acm_transport_ble::air::{AirParameters, AirReport, Phy};
use acm_transport_ble::{BleConfig, BleTransport, HciEndpoint};
use bytes::Bytes;
use common::{
    ControllerProcess, decoded, id, named, or_skip, rootcanal, the_answer, the_one, within,
};

/// A scratch file for an HCI log.
fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("acm-air-{}-{name}.btsnoop", std::process::id()))
}

/// A transport for `name` on `hci`, logging its HCI traffic to `log`.
async fn logged(name: &str, hci: HciEndpoint, log: &Path, idle: Option<Duration>) -> BleTransport {
    let config = BleConfig::new(id(name), hci)
        .with_hci_log(log)
        .with_idle_interval(idle);
    BleTransport::start(config)
        .await
        .expect("the transport starts")
}

/// Two logged transports, "tablet" accepting on `controller`'s first port and "phone" dialing
/// on `second`, and their link, each end's report and log.
struct Pair {
    tablet: BleTransport,
    phone: BleTransport,
    to_tablet: Box<dyn Link>,
    to_phone: Box<dyn Link>,
    tablet_log: PathBuf,
    phone_log: PathBuf,
}

async fn pair(
    controller: &ControllerProcess,
    second: usize,
    test: &str,
    idle: Option<Duration>,
) -> Pair {
    let tablet_log = log_path(&format!("{test}-tablet"));
    let phone_log = log_path(&format!("{test}-phone"));
    let tablet = logged("tablet", controller.hci(0), &tablet_log, idle).await;
    let phone = logged("phone", controller.hci(second), &phone_log, idle).await;
    let to_tablet = phone.dial(&id("tablet")).await.expect("the dial works");
    let to_phone = tablet.accept().await.expect("the tablet accepts");
    Pair {
        tablet,
        phone,
        to_tablet,
        to_phone,
        tablet_log,
        phone_log,
    }
}

/// Waits until what the connection to `peer` runs with satisfies `wanted`, and returns it.
async fn until(
    report: &AirReport,
    peer: &str,
    wanted: impl Fn(&AirParameters) -> bool,
) -> AirParameters {
    loop {
        if let Some(air) = report.peer(&id(peer))
            && wanted(&air)
        {
            return air;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn the_central_gets_the_2m_phy_on_rootcanal_and_its_hci_log_shows_the_exchange() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    let pair = within(120, async {
        let pair = pair(&controller, 0, "phy", None).await;
        let on_2m = |air: &AirParameters| air.tx_phy == Phy::Le2M && air.rx_phy == Phy::Le2M;
        let phone = until(&pair.phone.air_report(), "tablet", on_2m).await;
        let tablet = until(&pair.tablet.air_report(), "phone", on_2m).await;
        assert!(phone.central && !tablet.central);
        // Rootcanal 1.10 has no LE data length extension: PDUs stay at 27 octets.
        assert_eq!((phone.max_tx_octets, tablet.max_tx_octets), (27, 27));
        assert_eq!(phone.interval, Duration::from_micros(7500));
        assert_eq!(tablet.interval, Duration::from_micros(7500));
        assert_eq!(phone.event_length, Some(Duration::from_micros(7500)));
        assert_eq!(tablet.event_length, None);
        // Its LE ACL buffers: 20 of 27 bytes.
        assert_eq!((phone.acl_packets, phone.acl_packet_length), (20, 27));

        pair.to_tablet
            .send(Bytes::from_static(b"on 2M"))
            .await
            .unwrap();
        assert_eq!(pair.to_phone.recv().await.unwrap(), "on 2M");
        pair
    })
    .await;
    drop(pair.to_tablet);
    drop(pair.to_phone);
    drop((pair.phone, pair.tablet));

    let phone = decoded(&pair.phone_log);
    let asked = the_one(&phone, "HCI_LE_SET_PHY_COMMAND");
    assert_eq!(asked.direction, "HOST->CONTROLLER");
    asked.shows("tx_phys: LE_2M");
    the_answer(&phone, "HCI_LE_SET_PHY_COMMAND").shows("status: PENDING");
    let done = the_one(&phone, "HCI_LE_PHY_UPDATE_COMPLETE_EVENT");
    assert_eq!(done.direction, "CONTROLLER->HOST");
    done.shows("tx_phy: LE_2M").shows("rx_phy: LE_2M");
    // The controller does not list LE data length extension: nothing is asked.
    assert!(named(&phone, "HCI_LE_SET_DATA_LENGTH_COMMAND").is_empty());
    // The peripheral asks for no PHY but learns of the new one.
    let tablet = decoded(&pair.tablet_log);
    assert!(named(&tablet, "HCI_LE_SET_PHY_COMMAND").is_empty());
    the_one(&tablet, "HCI_LE_PHY_UPDATE_COMPLETE_EVENT").shows("tx_phy: LE_2M");
    let _ = std::fs::remove_file(&pair.phone_log);
    let _ = std::fs::remove_file(&pair.tablet_log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn an_idle_connection_moves_to_the_idle_interval_and_back_when_data_flows() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let idle = Duration::from_millis(100);
        let pair = pair(&controller, 0, "pace", Some(idle)).await;
        let phone = pair.phone.air_report();
        let tablet = pair.tablet.air_report();
        // Nothing flows: both ends see the idle interval, and no event length is asked.
        let air = until(&phone, "tablet", |air| air.interval == idle).await;
        assert_eq!(air.event_length, None);
        until(&tablet, "phone", |air| air.interval == idle).await;

        // A transfer makes it busy again, with events as long as the interval.
        let frame = Bytes::from(vec![0x5A; 4096]);
        let sending = async {
            for _ in 0..16 {
                pair.to_tablet.send(frame.clone()).await.unwrap();
            }
        };
        let receiving = async {
            for _ in 0..16 {
                assert_eq!(pair.to_phone.recv().await.unwrap().len(), 4096);
            }
        };
        tokio::join!(sending, receiving);
        let busy = Duration::from_micros(7500);
        let air = until(&phone, "tablet", |air| air.interval == busy).await;
        assert_eq!(air.event_length, Some(busy));
        until(&tablet, "phone", |air| air.interval == busy).await;
    })
    .await;
    let _ = std::fs::remove_file(log_path("pace-phone"));
    let _ = std::fs::remove_file(log_path("pace-tablet"));
}

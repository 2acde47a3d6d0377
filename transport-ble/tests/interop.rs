//! Interoperability with Bumble, an independent L2CAP stack: its peer script opens a channel to
//! transport-ble, and acm frames cross both ways; transport-ble's HCI log shows what it asked of
//! Bumble's controller. Run with `--ignored` (see `.ci/ble`).

mod common;

use std::process::Stdio;

use acm_transport::{CloseReason, Closure, Transport, TransportError};
use acm_transport_ble::{BleConfig, BleTransport};
use common::{bumble, decoded, id, named, or_skip, the_answer, the_one, venv, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn a_bumble_peer_exchanges_acm_frames_with_transport_ble() {
    let Some(controllers) = or_skip("bumble", bumble()) else {
        return;
    };
    let Some(venv) = or_skip("the venv", venv()) else {
        return;
    };
    let log = std::env::temp_dir().join(format!("acm-interop-{}.btsnoop", std::process::id()));
    within(120, async {
        // "C0:11:22:33:44:55", least significant byte first.
        let config = BleConfig::new(id("rust-acm"), controllers.hci(0))
            .with_address([0x55, 0x44, 0x33, 0x22, 0x11, 0xC0])
            .with_hci_log(&log);
        let transport = BleTransport::start(config)
            .await
            .expect("the transport starts");

        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/peer.py");
        let port = controllers.ports[1].port().to_string();
        let peer = tokio::process::Command::new(venv.join("bin/python"))
            .args([script, &port, "C0:11:22:33:44:55"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the Bumble peer starts");

        let link = transport.accept().await.expect("the Bumble peer's link");
        assert_eq!(link.peer_device(), &id("bumble-peer"));
        // Echo each frame: Bumble checks what comes back.
        for _ in 0..2 {
            let frame = link.recv().await.expect("a frame from Bumble");
            assert_eq!(&frame[..2], &[0xAC, 0x4D]);
            link.send(frame).await.expect("the echo is sent");
        }
        match link.recv().await {
            Err(TransportError::Closed(Closure::Peer(reason))) => {
                assert_eq!(reason, CloseReason::new(9, "bumble done"));
            }
            other => panic!("expected Bumble's close, got {other:?}"),
        }
        let output = peer.wait_with_output().await.expect("the Bumble peer ends");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("PASS"),
            "the Bumble peer failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    })
    .await;

    // As peripheral, transport-ble asks its controller for the longest PDUs (Bumble's lists
    // data length extension), and Bumble's controller refuses the command.
    let log_records = decoded(&log);
    the_one(&log_records, "HCI_LE_SET_DATA_LENGTH_COMMAND")
        .shows("tx_octets: 251")
        .shows("tx_time: 2120");
    the_answer(&log_records, "HCI_LE_SET_DATA_LENGTH_COMMAND").shows("UNKNOWN_HCI_COMMAND");
    // A peripheral leaves the PHY to the central.
    assert!(named(&log_records, "HCI_LE_SET_PHY_COMMAND").is_empty());
    let _ = std::fs::remove_file(&log);
}

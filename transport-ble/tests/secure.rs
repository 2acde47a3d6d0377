//! The secure layer (SPEC section 17) over Bluetooth LE links between two transports on one
//! Rootcanal medium: one pairing code on both ends, nothing of a frame readable on the air,
//! and an impersonator refused. Run with `--ignored` (see `.ci/ble`).

mod common;

use acm::secure::{CloseCode, Identity, SecureConfig, establish};
use acm_transport::{Link, Transport};
use bytes::Bytes;
use common::{id, or_skip, rootcanal, transport, within};

const SECRET: &[u8] = b"a message no radio in range may read";

/// An acm-shaped frame (extension type 0x80) carrying `payload`.
fn frame(payload: &[u8]) -> Bytes {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![0xAC, 0x4D, 1, 0x80, 0, len[1], len[2], len[3], 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn paired_devices_see_one_code_and_the_air_carries_no_clear_text() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let tablet = transport("tablet", controller.hci(0)).await;
        let phone = transport("phone", controller.hci(0)).await;
        let phone_config = SecureConfig::new(Identity::generate().unwrap());
        let tablet_config = SecureConfig::new(Identity::generate().unwrap());
        let mut phone_asks = phone_config.pairing_requests().unwrap();
        let mut tablet_asks = tablet_config.pairing_requests().unwrap();
        let owners = async {
            let (a, b) = (
                phone_asks.next().await.unwrap(),
                tablet_asks.next().await.unwrap(),
            );
            assert_eq!(a.code(), b.code(), "both owners see one code");
            a.accept();
            b.accept();
        };
        let tablet_id = id("tablet");
        let (dialed, accepted) = tokio::join!(phone.dial(&tablet_id), tablet.accept());
        let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap());
        assert_eq!(
            dialed.opening(),
            accepted.opening(),
            "both ends bind one opening"
        );
        let (dialed, accepted, ()) = tokio::join!(
            establish(dialed, &phone_config),
            establish(accepted, &tablet_config),
            owners
        );
        let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap());
        assert_eq!(
            dialed.max_frame_size(),
            dialed.inner().max_frame_size() - 28
        );

        // What the tablet's radio receives is a record, not the frame.
        dialed.send(frame(SECRET)).await.unwrap();
        let on_air = accepted.inner().recv().await.unwrap();
        assert!(!on_air.windows(SECRET.len()).any(|w| w == SECRET));
        assert_eq!(&on_air[..4], b"\xAC\x4D\x01\x7F");

        // Frames cross whole the other way.
        accepted.send(frame(SECRET)).await.unwrap();
        assert_eq!(dialed.recv().await.unwrap(), frame(SECRET));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn a_radio_claiming_a_paired_id_with_another_key_is_refused() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let tablet = transport("tablet", controller.hci(0)).await;
        let impostor = transport("phone", controller.hci(0)).await;
        let tablet_config = SecureConfig::ephemeral().unwrap();
        let real_phone = Identity::generate().unwrap();
        tablet_config
            .trust_store()
            .insert(&id("phone"), real_phone.public_key())
            .unwrap();
        let tablet_id = id("tablet");
        let (dialed, accepted) = tokio::join!(impostor.dial(&tablet_id), tablet.accept());
        let impostor_config = SecureConfig::ephemeral().unwrap();
        let (dialed, accepted) = tokio::join!(
            establish(dialed.unwrap(), &impostor_config),
            establish(accepted.unwrap(), &tablet_config)
        );
        assert_eq!(
            accepted.unwrap_err().close_code(),
            Some(CloseCode::Impersonation)
        );
        assert_eq!(
            dialed.unwrap_err().close_code(),
            Some(CloseCode::Impersonation)
        );
    })
    .await;
}

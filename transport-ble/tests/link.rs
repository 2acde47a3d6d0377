//! The transport against virtual controllers: discovery, dial and accept, frames both ways,
//! closing with a reason, and losing the controller. Run with `--ignored` (see `.ci/ble`).

mod common;

use acm_transport::{CloseReason, Closure, Link, Transport, TransportError};
use acm_transport_ble::MAX_FRAME_SIZE;
use bytes::Bytes;
use common::{ControllerProcess, id, or_skip, rootcanal, transport, within};

/// A frame of `len` bytes whose content says where it came from.
fn frame(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Two transports on `controller`, "tablet" accepting and "phone" dialing, and their link.
async fn linked(
    controller: &ControllerProcess,
    second: usize,
) -> (
    acm_transport_ble::BleTransport,
    acm_transport_ble::BleTransport,
    Box<dyn Link>,
    Box<dyn Link>,
) {
    let tablet = transport("tablet", controller.hci(0)).await;
    let phone = transport("phone", controller.hci(second)).await;
    let to_tablet = phone.dial(&id("tablet")).await.expect("the dial works");
    let to_phone = tablet.accept().await.expect("the tablet accepts");
    (tablet, phone, to_tablet, to_phone)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn dialer_discovers_the_acceptor_and_frames_cross_both_ways() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(90, async {
        let tablet = transport("tablet", controller.hci(0)).await;
        let phone = transport("phone", controller.hci(0)).await;

        let seen = phone.discover().await.expect("discovery works");
        let found = seen
            .iter()
            .find(|device| device.id == id("tablet"))
            .expect("the tablet is listed");
        assert_eq!(found.address.len(), 17);

        let to_tablet = phone.dial(&id("tablet")).await.expect("the dial works");
        let to_phone = tablet.accept().await.expect("the tablet accepts");
        assert_eq!(to_tablet.peer_device(), &id("tablet"));
        assert_eq!(to_phone.peer_device(), &id("phone"));
        assert_eq!(to_tablet.max_frame_size(), MAX_FRAME_SIZE);
        assert_eq!(to_phone.max_frame_size(), MAX_FRAME_SIZE);

        to_tablet.send(Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(to_phone.recv().await.unwrap(), "hello");
        to_phone.send(Bytes::from_static(b"hi")).await.unwrap();
        assert_eq!(to_tablet.recv().await.unwrap(), "hi");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn frames_up_to_the_largest_sdu_arrive_whole_and_in_order_both_ways() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(180, async {
        let (_tablet, _phone, to_tablet, to_phone) = linked(&controller, 0).await;
        let sizes = [1, 12, 247, 248, 4096, 65529, 65530, MAX_FRAME_SIZE];
        let up = async {
            for (i, &len) in sizes.iter().enumerate() {
                to_tablet.send(frame(len, i as u8)).await.unwrap();
            }
        };
        let down = async {
            for (i, &len) in sizes.iter().enumerate() {
                to_phone.send(frame(len, 100 + i as u8)).await.unwrap();
            }
        };
        let read_up = async {
            for (i, &len) in sizes.iter().enumerate() {
                assert_eq!(to_phone.recv().await.unwrap(), frame(len, i as u8));
            }
        };
        let read_down = async {
            for (i, &len) in sizes.iter().enumerate() {
                assert_eq!(to_tablet.recv().await.unwrap(), frame(len, 100 + i as u8));
            }
        };
        tokio::join!(up, down, read_up, read_down);

        let too_big = to_tablet.send(frame(MAX_FRAME_SIZE + 1, 0)).await;
        assert!(matches!(too_big, Err(TransportError::FrameTooLarge { .. })));
        let empty = to_tablet.send(Bytes::new()).await;
        assert!(matches!(empty, Err(TransportError::EmptyFrame)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn a_graceful_close_delivers_every_frame_then_the_reason_to_the_peer() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let (_tablet, _phone, to_tablet, to_phone) = linked(&controller, 0).await;
        // Frames sent right before the close are not overtaken by it.
        for i in 0..5u8 {
            to_tablet.send(frame(20_000, i)).await.unwrap();
        }
        let reason = CloseReason::new(7, "done for today");
        let closing = to_tablet.close(reason.clone());
        let reading = async {
            for i in 0..5u8 {
                assert_eq!(to_phone.recv().await.unwrap(), frame(20_000, i));
            }
            match to_phone.recv().await {
                Err(TransportError::Closed(Closure::Peer(got))) => assert_eq!(got, reason),
                other => panic!("expected the peer's close, got {other:?}"),
            }
        };
        tokio::join!(closing, reading);
        assert_eq!(to_tablet.closure(), Some(Closure::Local(reason.clone())));
        assert_eq!(to_phone.closure(), Some(Closure::Peer(reason.clone())));
        assert!(matches!(
            to_phone.send(Bytes::from_static(b"late")).await,
            Err(TransportError::Closed(Closure::Peer(_)))
        ));
        assert!(matches!(
            to_tablet.recv().await,
            Err(TransportError::Closed(Closure::Local(_)))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn the_acceptor_closing_is_seen_by_the_dialer_with_its_reason() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let (_tablet, _phone, to_tablet, to_phone) = linked(&controller, 0).await;
        to_phone
            .send(Bytes::from_static(b"last words"))
            .await
            .unwrap();
        let reason = CloseReason::new(3, "bye");
        tokio::join!(to_phone.close(reason.clone()), async {
            assert_eq!(to_tablet.recv().await.unwrap(), "last words");
            match to_tablet.recv().await {
                Err(TransportError::Closed(Closure::Peer(got))) => assert_eq!(got, reason),
                other => panic!("expected the peer's close, got {other:?}"),
            }
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn a_dead_controller_loses_the_link_without_a_partial_frame() {
    let Some(mut controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let (_tablet, _phone, to_tablet, to_phone) = linked(&controller, 0).await;
        // Keep large frames flowing, kill the controller mid-transfer, and check that the
        // reader gets whole frames only, then the loss.
        let sender = async {
            let mut i = 0u8;
            while to_tablet.send(frame(MAX_FRAME_SIZE, i)).await.is_ok() {
                i = i.wrapping_add(1);
            }
        };
        let reader = async {
            let mut i = 0u8;
            loop {
                match to_phone.recv().await {
                    Ok(got) => {
                        assert_eq!(got, frame(MAX_FRAME_SIZE, i), "frame {i} is whole");
                        i = i.wrapping_add(1);
                        if i == 2 {
                            controller.kill();
                        }
                    }
                    Err(TransportError::Closed(Closure::Lost(_))) => break,
                    Err(other) => panic!("expected the link lost, got {other:?}"),
                }
            }
        };
        tokio::join!(sender, reader);
        assert!(matches!(to_tablet.closure(), Some(Closure::Lost(_))));
        assert!(matches!(to_phone.closure(), Some(Closure::Lost(_))));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn dropping_an_open_link_is_a_loss_for_the_peer() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let (_tablet, _phone, to_tablet, to_phone) = linked(&controller, 0).await;
        drop(to_tablet);
        assert!(matches!(
            to_phone.recv().await,
            Err(TransportError::Closed(Closure::Lost(_)))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn dialing_a_device_nobody_advertises_is_unreachable() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(60, async {
        let config = acm_transport_ble::BleConfig::new(id("phone"), controller.hci(0))
            .with_dial_timeout(std::time::Duration::from_secs(2));
        let phone = acm_transport_ble::BleTransport::start(config)
            .await
            .unwrap();
        assert!(matches!(
            phone.dial(&id("nobody")).await,
            Err(TransportError::Unreachable(_))
        ));
    })
    .await;
}

/// Sends `count` frames each way on a link at once, and checks that all arrive, in order.
async fn exchange(name: &str, dialer: &dyn Link, acceptor: &dyn Link, count: usize, seed: u8) {
    let nth = |i: usize| seed.wrapping_add(i as u8);
    let sending = async {
        for i in 0..count {
            dialer.send(frame(100, nth(i))).await.unwrap();
            acceptor.send(frame(90, nth(i))).await.unwrap();
        }
    };
    let reading = async {
        for i in 0..count {
            let got = acceptor.recv().await.unwrap();
            assert_eq!(got, frame(100, nth(i)), "{name} link: frame {i} up");
        }
    };
    let reading_back = async {
        for i in 0..count {
            let got = dialer.recv().await.unwrap();
            assert_eq!(got, frame(90, nth(i)), "{name} link: frame {i} down");
        }
    };
    tokio::join!(sending, reading, reading_back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn two_links_to_the_same_device_both_carry_more_frames_than_the_initial_credits() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let (tablet, phone, first_up, first_down) = linked(&controller, 0).await;
        let second_up = phone
            .dial(&id("tablet"))
            .await
            .expect("the second dial works");
        let second_down = tablet.accept().await.expect("the tablet accepts again");
        // Many more frames than the credits a channel starts with, on both links at once.
        let count = 3 * usize::from(acm_transport_ble::binding::INITIAL_CREDITS);
        tokio::join!(
            exchange("first", &*first_up, &*first_down, count, 0),
            exchange("second", &*second_up, &*second_down, count, 100),
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn a_reader_taking_one_frame_at_a_time_from_a_full_link_loses_nothing() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let (_tablet, _phone, up, down) = linked(&controller, 0).await;
        let count = 400u32;
        let sent = std::sync::atomic::AtomicU32::new(0);
        let numbered = |i: u32| {
            let mut bytes = frame(40, i as u8).to_vec();
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            Bytes::from(bytes)
        };
        let sending = async {
            for i in 0..count {
                up.send(numbered(i)).await.unwrap();
                sent.store(i + 1, std::sync::atomic::Ordering::SeqCst);
            }
        };
        // Eight times, the reader waits until the sender is held back, then takes one frame:
        // the host stack's queue is full each time, and the credits given back must not let the
        // sender overrun it (trouble-host drops an SDU that finds its queue full).
        let reading = async {
            for i in 0..count {
                if i < 8 {
                    let mut last = None;
                    loop {
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                        let now = sent.load(std::sync::atomic::Ordering::SeqCst);
                        if last == Some(now) || now == count {
                            break;
                        }
                        last = Some(now);
                    }
                }
                let got = down.recv().await.unwrap();
                let number = u32::from_be_bytes([got[0], got[1], got[2], got[3]]);
                assert_eq!(number, i, "frame {i} is the next to arrive");
                assert_eq!(got, numbered(i));
            }
        };
        tokio::join!(sending, reading);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn a_send_waiting_for_credits_ends_when_the_peer_takes_the_channel_down() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let (_tablet, _phone, up, down) = linked(&controller, 0).await;
        // Neither end reads: each runs out of the other's credits, and its sends wait.
        // Then `down` closes: its CLOSE cannot be sent, so it takes the channel down after its
        // close timeout, and `up`'s waiting send must then fail, not wait for credits for ever.
        let closing = async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            down.close(CloseReason::new(7, "enough")).await;
        };
        let (up_sent, _, ()) = tokio::join!(fill(&*up), fill(&*down), closing);
        assert!(
            up_sent > 0,
            "frames went through before the credits ran out"
        );
        assert!(
            matches!(up.closure(), Some(Closure::Lost(_))),
            "{:?}",
            up.closure()
        );
    })
    .await;
}

/// Sends frames on `link` until a send fails; how many went through.
async fn fill(link: &dyn Link) -> u32 {
    for i in 0u32.. {
        if link.send(frame(100, i as u8)).await.is_err() {
            return i;
        }
    }
    unreachable!("u32::MAX frames sent to a peer that reads none")
}

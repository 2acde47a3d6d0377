//! How links end: a graceful close with its reason after every earlier frame, what send and
//! recv do afterwards, and the ways a link is lost, never with a partial frame.

mod common;

use acm_transport::{CloseReason, Closure, Link, TransportError};
use acm_transport_tcp::binding;
use common::{closed, frame, pair, raw_pair, read_message, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `closer` sends frames and closes with `reason` while `other` reads: `other` gets every frame,
/// then the reason; each side's closure says who closed.
async fn close_after_frames(closer: &dyn Link, other: &dyn Link, reason: CloseReason) {
    let closing = async {
        for seq in 0..200 {
            closer
                .send(frame(seq, 12 + seq as usize * 97))
                .await
                .unwrap();
        }
        closer.close(reason.clone()).await;
    };
    let reading = async {
        for seq in 0..200 {
            assert_eq!(
                other.recv().await.unwrap(),
                frame(seq, 12 + seq as usize * 97)
            );
        }
        assert_eq!(closed(other.recv().await), Closure::Peer(reason.clone()));
    };
    tokio::join!(closing, reading);
    assert_eq!(closer.closure(), Some(Closure::Local(reason.clone())));
    assert_eq!(other.closure(), Some(Closure::Peer(reason)));
}

#[tokio::test]
async fn the_dialer_closing_is_seen_by_the_acceptor_after_every_earlier_frame() {
    within(20, async {
        let p = pair().await;
        let reason = CloseReason::new(0xDEAD_BEEF, "fini — à demain");
        close_after_frames(&*p.dialer, &*p.acceptor, reason).await;
    })
    .await;
}

#[tokio::test]
async fn the_acceptor_closing_is_seen_by_the_dialer_after_every_earlier_frame() {
    within(20, async {
        let p = pair().await;
        close_after_frames(&*p.acceptor, &*p.dialer, CloseReason::normal()).await;
    })
    .await;
}

#[tokio::test]
async fn frames_queued_before_a_close_reach_a_peer_that_reads_only_afterwards() {
    within(20, async {
        let p = pair().await;
        for seq in 0..10 {
            p.dialer.send(frame(seq, 1000)).await.unwrap();
        }
        p.dialer.close(CloseReason::new(1, "later")).await;
        for seq in 0..10 {
            assert_eq!(p.acceptor.recv().await.unwrap(), frame(seq, 1000));
        }
        assert_eq!(
            closed(p.acceptor.recv().await),
            Closure::Peer(CloseReason::new(1, "later"))
        );
    })
    .await;
}

#[tokio::test]
async fn after_a_close_send_and_recv_keep_failing_with_closed_on_both_sides() {
    within(20, async {
        let p = pair().await;
        let reason = CloseReason::new(3, "bye");
        p.dialer.close(reason.clone()).await;
        assert_eq!(
            closed(p.acceptor.recv().await),
            Closure::Peer(reason.clone())
        );
        for _ in 0..3 {
            let local = Closure::Local(reason.clone());
            let peer = Closure::Peer(reason.clone());
            assert_eq!(closed(p.dialer.send(frame(1, 12)).await), local);
            assert_eq!(closed(p.dialer.recv().await), local);
            assert_eq!(closed(p.acceptor.send(frame(1, 12)).await), peer);
            assert_eq!(closed(p.acceptor.recv().await), peer);
        }
        // Closing again changes nothing on either side.
        p.dialer.close(CloseReason::new(9, "again")).await;
        p.acceptor.close(CloseReason::new(9, "again")).await;
        assert_eq!(p.dialer.closure(), Some(Closure::Local(reason.clone())));
        assert_eq!(p.acceptor.closure(), Some(Closure::Peer(reason)));
    })
    .await;
}

#[tokio::test]
async fn both_sides_closing_at_once_each_see_their_own_close() {
    within(20, async {
        let p = pair().await;
        let (a, b) = (CloseReason::new(1, "a"), CloseReason::new(2, "b"));
        tokio::join!(p.dialer.close(a.clone()), p.acceptor.close(b.clone()));
        assert_eq!(closed(p.dialer.recv().await), Closure::Local(a));
        assert_eq!(closed(p.acceptor.recv().await), Closure::Local(b));
    })
    .await;
}

#[tokio::test]
async fn a_close_message_over_1024_bytes_reaches_the_peer_cut_at_a_character_boundary() {
    within(20, async {
        let p = pair().await;
        p.dialer.close(CloseReason::new(5, "ü".repeat(600))).await;
        match closed(p.acceptor.recv().await) {
            Closure::Peer(reason) => {
                assert_eq!(reason.code, 5);
                assert_eq!(reason.message, "ü".repeat(512));
            }
            other => panic!("expected the peer's close, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn the_closing_side_sends_close_last_then_ends_the_stream() {
    within(20, async {
        let (_transport, mut peer, link) = raw_pair("raw-phone").await;
        link.send(frame(1, 20)).await.unwrap();
        link.close(CloseReason::new(0x0102_0304, "done")).await;
        let (header, payload) = read_message(&mut peer).await.unwrap();
        assert_eq!([&header[..], &payload[..]].concat(), frame(1, 20));
        let (header, payload) = read_message(&mut peer).await.unwrap();
        assert_eq!(header, [0xAC, 0x4D, 0, 2, 0, 0, 0, 8, 0, 0, 0, 0]);
        assert_eq!(payload, b"\x01\x02\x03\x04done");
        // Then TCP's FIN: nothing more.
        let mut rest = Vec::new();
        assert_eq!(peer.read_to_end(&mut rest).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_close_from_the_peer_is_reported_after_the_frames_before_it() {
    within(20, async {
        let (_transport, mut peer, link) = raw_pair("raw-phone").await;
        peer.write_all(&frame(1, 30)).await.unwrap();
        peer.write_all(&binding::close(&CloseReason::new(4, "raw")))
            .await
            .unwrap();
        assert_eq!(link.recv().await.unwrap(), frame(1, 30));
        assert_eq!(
            closed(link.recv().await),
            Closure::Peer(CloseReason::new(4, "raw"))
        );
        // The link answers with the end of its stream.
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    })
    .await;
}

#[tokio::test]
async fn dropping_an_open_link_is_a_loss_for_the_peer() {
    within(20, async {
        let p = pair().await;
        p.dialer.send(frame(1, 12)).await.unwrap();
        assert_eq!(p.acceptor.recv().await.unwrap(), frame(1, 12));
        drop(p.dialer);
        assert!(matches!(closed(p.acceptor.recv().await), Closure::Lost(_)));
        assert!(matches!(p.acceptor.closure(), Some(Closure::Lost(_))));
        assert!(matches!(
            p.acceptor.send(frame(2, 12)).await,
            Err(TransportError::Closed(Closure::Lost(_)))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_stream_ended_without_close_is_a_loss() {
    within(20, async {
        let (_transport, mut peer, link) = raw_pair("raw-phone").await;
        peer.write_all(&frame(1, 40)).await.unwrap();
        assert_eq!(link.recv().await.unwrap(), frame(1, 40));
        peer.shutdown().await.unwrap();
        assert!(matches!(closed(link.recv().await), Closure::Lost(_)));
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_ends_mid_frame_is_a_loss_and_delivers_nothing_partial() {
    within(20, async {
        for cut in [5, 12, 13, 500] {
            let (_transport, mut peer, link) = raw_pair("raw-phone").await;
            peer.write_all(&frame(1, 40)).await.unwrap();
            assert_eq!(link.recv().await.unwrap(), frame(1, 40));
            peer.write_all(&frame(2, 1000)[..cut]).await.unwrap();
            peer.shutdown().await.unwrap();
            match link.recv().await {
                Err(TransportError::Closed(Closure::Lost(what))) => {
                    assert!(what.contains("middle of a frame"), "{what}");
                }
                other => panic!("cut at {cut}: expected the link lost, got {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_peer_announcing_a_frame_over_the_maximum_is_cut_off_before_its_payload() {
    within(20, async {
        let (_transport, mut peer, link) = raw_pair("raw-phone").await;
        // 16 MiB announced, not one payload byte sent: the link must not wait for them.
        peer.write_all(&[0xAC, 0x4D, 1, 0x80, 0, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1])
            .await
            .unwrap();
        match link.recv().await {
            Err(TransportError::Closed(Closure::Lost(what))) => {
                assert!(
                    what.contains("16777227") && what.contains("65535"),
                    "{what}"
                );
            }
            other => panic!("expected the link lost, got {other:?}"),
        }
        // And the connection is gone.
        let mut rest = Vec::new();
        let _ = peer.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_malformed_binding_message_is_a_loss_and_an_unknown_kind_is_skipped() {
    within(20, async {
        let (_transport, mut peer, link) = raw_pair("raw-phone").await;
        peer.write_all(&[0xAC, 0x4D, 0, 0x7F, 0, 0, 0, 2, 0, 0, 0, 0, 1, 2])
            .await
            .unwrap();
        peer.write_all(&frame(1, 12)).await.unwrap();
        assert_eq!(link.recv().await.unwrap(), frame(1, 12));
        // A CLOSE with a flag set.
        peer.write_all(&[0xAC, 0x4D, 0, 2, 1, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        assert!(matches!(closed(link.recv().await), Closure::Lost(_)));
    })
    .await;
}

#[tokio::test]
async fn a_second_open_is_a_loss() {
    within(20, async {
        let (_transport, mut peer, link) = raw_pair("raw-phone").await;
        peer.write_all(&binding::open(&common::id("again")))
            .await
            .unwrap();
        assert!(matches!(closed(link.recv().await), Closure::Lost(_)));
    })
    .await;
}

#[tokio::test]
async fn frames_read_ahead_before_this_side_closes_are_discarded() {
    within(20, async {
        let p = pair().await;
        for seq in 0..10 {
            p.dialer.send(frame(seq, 100)).await.unwrap();
        }
        // All ten are on their way: the first receive reads the others ahead.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(p.acceptor.recv().await.unwrap(), frame(0, 100));
        let reason = CloseReason::new(2, "enough");
        p.acceptor.close(reason.clone()).await;
        assert_eq!(closed(p.acceptor.recv().await), Closure::Local(reason));
    })
    .await;
}

#[tokio::test]
async fn a_receive_waiting_when_this_side_closes_fails_with_the_close() {
    within(20, async {
        let p = pair().await;
        let reason = CloseReason::new(4, "while waiting");
        let closing = async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            p.acceptor.close(reason.clone()).await;
        };
        let (received, ()) = tokio::join!(p.acceptor.recv(), closing);
        assert_eq!(closed(received), Closure::Local(reason));
    })
    .await;
}

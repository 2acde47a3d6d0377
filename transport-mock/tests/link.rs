//! A healthy link: frames, errors, backpressure, and how it ends.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use acm_transport::{CloseReason, Closure, FrameBuf, Link, Transport, TransportError};
use acm_transport_mock::{DeviceOptions, Fault};
use bytes::Bytes;
use common::{nothing_arrives, pair, pair_with, pair_with_buffer_towards_b, recv_n, send_all};

fn closed(result: Result<impl std::fmt::Debug, TransportError>) -> Closure {
    match result {
        Err(TransportError::Closed(closure)) => closure,
        other => panic!("expected a closed link, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn frames_flow_both_ways_whole_and_in_order() {
    let p = pair(1).await;
    send_all(&*p.dialer, &[b"one", b"two", b"three"]).await;
    send_all(&*p.acceptor, &[b"uno", b"dos"]).await;
    assert_eq!(
        recv_n(&*p.acceptor, 3).await,
        [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    assert_eq!(
        recv_n(&*p.dialer, 2).await,
        [b"uno".to_vec(), b"dos".to_vec()]
    );
    assert!(nothing_arrives(&*p.acceptor).await);

    let stats = p.handle.stats(&p.a).unwrap();
    assert_eq!((stats.frames_sent, stats.bytes_sent), (3, 11));
    assert_eq!((stats.frames_delivered, stats.bytes_delivered), (3, 11));
    assert_eq!((stats.frames_in_flight, stats.bytes_in_flight), (0, 0));
    assert_eq!(p.handle.stats(&p.b).unwrap().frames_delivered, 2);
}

#[tokio::test(start_paused = true)]
async fn a_frame_of_exactly_the_maximum_size_goes_through() {
    let p = pair_with(
        1,
        DeviceOptions::new().max_frame_size(100),
        DeviceOptions::new(),
    )
    .await;
    p.dialer.send(Bytes::from(vec![7; 100])).await.unwrap();
    assert_eq!(p.acceptor.recv().await.unwrap(), vec![7; 100]);
}

#[tokio::test(start_paused = true)]
async fn oversized_and_empty_frames_fail_without_sending_anything() {
    let p = pair_with(
        1,
        DeviceOptions::new(),
        DeviceOptions::new().max_frame_size(100),
    )
    .await;
    assert!(matches!(
        p.dialer.send(Bytes::from(vec![0; 101])).await,
        Err(TransportError::FrameTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        p.acceptor.send(Bytes::new()).await,
        Err(TransportError::EmptyFrame)
    ));
    assert_eq!(p.handle.stats(&p.a).unwrap().frames_sent, 0);
    assert_eq!(p.handle.stats(&p.b).unwrap().frames_sent, 0);
    assert!(nothing_arrives(&*p.acceptor).await);
    assert!(p.dialer.closure().is_none());
}

#[tokio::test(start_paused = true)]
async fn send_waits_while_the_buffer_is_full_and_resumes_once_there_is_room() {
    let p = pair_with_buffer_towards_b(10).await;
    p.handle.inject(&p.a, Fault::Stall).unwrap();
    send_all(&*p.dialer, &[b"12345", b"67890"]).await;
    let blocked = tokio::time::timeout(
        Duration::from_secs(5),
        p.dialer.send(Bytes::from_static(b"x")),
    );
    assert!(
        blocked.await.is_err(),
        "send should wait while 10 bytes are in flight"
    );
    assert_eq!(p.handle.stats(&p.a).unwrap().bytes_in_flight, 10);

    let sender = tokio::spawn({
        let dialer = p.dialer;
        async move {
            dialer.send(Bytes::from_static(b"x")).await.unwrap();
            dialer
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!sender.is_finished());
    p.handle.inject(&p.a, Fault::Unstall).unwrap();
    assert_eq!(p.acceptor.recv().await.unwrap(), "12345");
    let _dialer = sender.await.unwrap();
    assert_eq!(
        recv_n(&*p.acceptor, 2).await,
        [b"67890".to_vec(), b"x".to_vec()]
    );
}

/// A waker that counts how often the future polled with it was woken.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wakes {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A counter of wakes and the waker that counts into it.
fn counting_waker() -> (Arc<Wakes>, Waker) {
    let wakes = Arc::new(Wakes::default());
    (wakes.clone(), Waker::from(wakes))
}

#[tokio::test(start_paused = true)]
async fn a_waiting_receive_is_woken_by_frames_towards_it_only() {
    let p = pair(1).await;
    let (wakes, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut waiting = p.dialer.recv();
    assert!(waiting.as_mut().poll(&mut cx).is_pending());

    // Traffic the other way, sent and taken, is none of the dialer's receive's business.
    send_all(&*p.dialer, &[b"one", b"two"]).await;
    assert_eq!(
        recv_n(&*p.acceptor, 2).await,
        [b"one".to_vec(), b"two".to_vec()]
    );
    assert_eq!(wakes.count(), 0);

    send_all(&*p.acceptor, &[b"back"]).await;
    assert_eq!(wakes.count(), 1);
    match waiting.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(frame)) => assert_eq!(frame, "back"),
        other => panic!("expected the frame, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_send_is_woken_by_room_in_its_direction_only() {
    let p = pair_with_buffer_towards_b(10).await;
    send_all(&*p.dialer, &[b"1234567890"]).await;
    let (wakes, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut waiting = p.dialer.send(Bytes::from_static(b"x"));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());

    // Frames towards the dialer, sent and taken, free no room towards the acceptor.
    send_all(&*p.acceptor, &[b"uno", b"dos"]).await;
    assert_eq!(
        recv_n(&*p.dialer, 2).await,
        [b"uno".to_vec(), b"dos".to_vec()]
    );
    assert_eq!(wakes.count(), 0);

    assert_eq!(p.acceptor.recv().await.unwrap(), "1234567890");
    assert_eq!(wakes.count(), 1);
    assert!(matches!(
        waiting.as_mut().poll(&mut cx),
        Poll::Ready(Ok(()))
    ));
    drop(waiting);
    assert_eq!(p.acceptor.recv().await.unwrap(), "x");
}

#[tokio::test(start_paused = true)]
async fn a_frame_larger_than_the_buffer_goes_through_an_empty_link() {
    let p = pair_with_buffer_towards_b(4).await;
    p.dialer
        .send(Bytes::from_static(b"longer than four"))
        .await
        .unwrap();
    assert_eq!(p.acceptor.recv().await.unwrap(), "longer than four");
}

#[tokio::test(start_paused = true)]
async fn graceful_close_delivers_earlier_frames_then_the_reason() {
    let p = pair(1).await;
    send_all(&*p.dialer, &[b"last", b"words"]).await;
    p.dialer.close(CloseReason::new(3, "bye")).await;

    let local = Closure::Local(CloseReason::new(3, "bye"));
    let peer = Closure::Peer(CloseReason::new(3, "bye"));
    assert_eq!(p.dialer.closure(), Some(local.clone()));
    assert_eq!(closed(p.dialer.recv().await), local);
    assert_eq!(
        closed(p.dialer.send(Bytes::from_static(b"more")).await),
        local
    );

    assert_eq!(
        recv_n(&*p.acceptor, 2).await,
        [b"last".to_vec(), b"words".to_vec()]
    );
    assert_eq!(closed(p.acceptor.recv().await), peer);
    assert_eq!(
        closed(p.acceptor.recv().await),
        peer,
        "every call after the end"
    );
    assert_eq!(
        closed(p.acceptor.send(Bytes::from_static(b"late")).await),
        peer
    );
    assert_eq!(p.acceptor.closure(), Some(peer));
    assert!(!p.handle.is_open());
}

#[tokio::test(start_paused = true)]
async fn closing_twice_keeps_the_first_closure() {
    let p = pair(1).await;
    p.acceptor.close(CloseReason::normal()).await;
    p.acceptor.close(CloseReason::new(9, "again")).await;
    p.dialer.close(CloseReason::new(8, "late")).await;
    assert_eq!(
        p.acceptor.closure(),
        Some(Closure::Local(CloseReason::normal()))
    );
    assert_eq!(
        p.dialer.closure(),
        Some(Closure::Peer(CloseReason::normal()))
    );
}

#[tokio::test(start_paused = true)]
async fn close_wakes_a_receiver_and_a_blocked_sender() {
    let p = pair_with_buffer_towards_b(1).await;
    p.handle.inject(&p.a, Fault::Stall).unwrap();
    p.dialer.send(Bytes::from_static(b"fills")).await.unwrap();
    let dialer: std::sync::Arc<dyn Link> = std::sync::Arc::from(p.dialer);
    let sending = tokio::spawn({
        let dialer = dialer.clone();
        async move { dialer.send(Bytes::from_static(b"waits")).await }
    });
    let receiving = tokio::spawn({
        let dialer = dialer.clone();
        async move { dialer.recv().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!sending.is_finished() && !receiving.is_finished());

    p.acceptor.close(CloseReason::new(1, "done")).await;
    let peer = Closure::Peer(CloseReason::new(1, "done"));
    assert_eq!(closed(sending.await.unwrap()), peer);
    assert_eq!(closed(receiving.await.unwrap()), peer);
}

#[tokio::test(start_paused = true)]
async fn closing_from_the_network_ends_both_sides_as_closed_by_the_peer() {
    let p = pair(1).await;
    send_all(&*p.dialer, &[b"to b"]).await;
    send_all(&*p.acceptor, &[b"to a"]).await;
    p.handle.close(CloseReason::new(4, "network"));
    let peer = Closure::Peer(CloseReason::new(4, "network"));
    assert_eq!(p.acceptor.recv().await.unwrap(), "to b");
    assert_eq!(p.dialer.recv().await.unwrap(), "to a");
    assert_eq!(closed(p.acceptor.recv().await), peer);
    assert_eq!(closed(p.dialer.recv().await), peer);
    assert_eq!(p.handle.closure(&p.a).unwrap(), Some(peer));
}

#[tokio::test(start_paused = true)]
async fn losing_the_link_discards_frames_in_flight_and_both_sides_see_lost() {
    let p = pair(1).await;
    send_all(&*p.dialer, &[b"never", b"arrives"]).await;
    p.handle.lose("radio lost");
    let lost = Closure::Lost("radio lost".into());
    assert_eq!(closed(p.acceptor.recv().await), lost);
    assert_eq!(closed(p.dialer.recv().await), lost);
    assert_eq!(closed(p.dialer.send(Bytes::from_static(b"x")).await), lost);
    let stats = p.handle.stats(&p.a).unwrap();
    assert_eq!((stats.frames_delivered, stats.frames_discarded), (0, 2));
    assert_eq!(stats.bytes_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn losing_a_link_that_is_draining_after_a_close_changes_nothing() {
    let p = pair(1).await;
    send_all(&*p.dialer, &[b"kept"]).await;
    p.dialer.close(CloseReason::normal()).await;
    p.handle.lose("too late");
    assert_eq!(p.acceptor.recv().await.unwrap(), "kept");
    assert_eq!(
        closed(p.acceptor.recv().await),
        Closure::Peer(CloseReason::normal())
    );
}

#[tokio::test(start_paused = true)]
async fn removing_a_device_loses_its_links_on_both_sides() {
    let p = pair(1).await;
    send_all(&*p.dialer, &[b"in flight"]).await;
    let waiting = tokio::spawn(async move { p.dialer.recv().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(p.network.remove_device(&p.b));

    let lost = Closure::Lost("device b left the network".into());
    assert_eq!(closed(waiting.await.unwrap()), lost);
    assert_eq!(closed(p.acceptor.recv().await), lost);
    assert_eq!(p.acceptor.closure(), Some(lost));
    assert!(p.network.links(&p.a, &p.b).is_empty());
}

#[tokio::test(start_paused = true)]
async fn removing_a_device_loses_links_still_waiting_to_be_accepted() {
    let network = acm_transport_mock::MockNetwork::new(1);
    let a = network.add_device(common::id("a")).unwrap();
    network.add_device(common::id("b")).unwrap();
    let link = a.dial(&common::id("b")).await.unwrap();
    network.remove_device(&common::id("b"));
    assert!(matches!(closed(link.recv().await), Closure::Lost(_)));
}

#[tokio::test(start_paused = true)]
async fn dropping_an_open_end_loses_the_link_for_the_peer() {
    let p = pair(1).await;
    drop(p.acceptor);
    assert!(matches!(closed(p.dialer.recv().await), Closure::Lost(_)));
    assert!(!p.handle.is_open());
}

#[tokio::test(start_paused = true)]
async fn concurrent_receivers_each_get_distinct_frames() {
    let p = pair(1).await;
    let acceptor: std::sync::Arc<dyn Link> = std::sync::Arc::from(p.acceptor);
    let receivers: Vec<_> = (0..3)
        .map(|_| {
            let acceptor = acceptor.clone();
            tokio::spawn(async move { acceptor.recv().await.unwrap() })
        })
        .collect();
    send_all(&*p.dialer, &[b"1", b"2", b"3"]).await;
    let mut got = Vec::new();
    for receiver in receivers {
        got.push(receiver.await.unwrap());
    }
    got.sort();
    assert_eq!(got, ["1", "2", "3"]);
}

#[tokio::test(start_paused = true)]
async fn concurrent_senders_waiting_for_room_all_go_once_it_is_made() {
    let p = pair_with_buffer_towards_b(10).await;
    send_all(&*p.dialer, &[b"1234567890"]).await;
    let dialer: std::sync::Arc<dyn Link> = std::sync::Arc::from(p.dialer);
    let senders: Vec<_> = [b"a", b"b", b"c"]
        .into_iter()
        .map(|frame| {
            let dialer = dialer.clone();
            tokio::spawn(async move { dialer.send(Bytes::from_static(frame)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    assert!(
        senders.iter().all(|s| !s.is_finished()),
        "the buffer is full"
    );
    // A sender whose wake-up was lost would wait for ever, and so would this.
    let mut got = tokio::time::timeout(Duration::from_secs(1), recv_n(&*p.acceptor, 4))
        .await
        .expect("every sender is woken");
    for sender in senders {
        sender.await.unwrap().unwrap();
    }
    got.sort();
    assert_eq!(
        got,
        [
            b"1234567890".to_vec(),
            b"a".to_vec(),
            b"b".to_vec(),
            b"c".to_vec()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_frames_cross_a_small_buffer_intact_while_both_sides_run_in_parallel() {
    let p = pair_with_buffer_towards_b(64).await;
    let frames: Vec<Bytes> = (0..2_000_u32)
        .map(|n| Bytes::from(n.to_be_bytes().repeat(1 + n as usize % 10)))
        .collect();
    let sender = tokio::spawn({
        let frames = frames.clone();
        let dialer = p.dialer;
        async move {
            for frame in frames {
                dialer.send(frame).await.unwrap();
            }
            dialer.close(CloseReason::normal()).await;
        }
    });
    for frame in &frames {
        assert_eq!(&p.acceptor.recv().await.unwrap(), frame);
    }
    assert_eq!(
        closed(p.acceptor.recv().await),
        Closure::Peer(CloseReason::normal())
    );
    sender.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_frame_sent_in_two_parts_arrives_in_the_same_two_parts_without_a_copy() {
    let p = pair(1).await;
    let body = Bytes::from(vec![9; 5000]);
    let frame = FrameBuf::new(Bytes::from_static(b"head"), body.clone());
    p.dialer.send_buf(frame.clone()).await.unwrap();
    let got = p.acceptor.recv_buf().await.unwrap();
    assert_eq!(got, frame);
    assert_eq!(got.body().as_ptr(), body.as_ptr(), "the sender's own bytes");
    let stats = p.handle.stats(&p.a).unwrap();
    assert_eq!((stats.bytes_sent, stats.bytes_delivered), (5004, 5004));
}

#[tokio::test(start_paused = true)]
async fn two_part_and_one_part_frames_mix_and_recv_joins_the_parts() {
    let p = pair(1).await;
    let split = || FrameBuf::new(Bytes::from_static(b"ab"), Bytes::from_static(b"cd"));
    p.dialer.send_buf(split()).await.unwrap();
    p.dialer.send(Bytes::from_static(b"whole")).await.unwrap();
    p.dialer.send_buf(split()).await.unwrap();
    assert_eq!(p.acceptor.recv().await.unwrap(), "abcd");
    assert_eq!(
        p.acceptor.recv_buf().await.unwrap(),
        FrameBuf::from(Bytes::from_static(b"whole"))
    );
    assert_eq!(p.acceptor.recv_buf().await.unwrap(), split());
}

#[tokio::test(start_paused = true)]
async fn two_part_frames_are_checked_whole_for_size_and_emptiness() {
    let p = pair_with(
        1,
        DeviceOptions::new().max_frame_size(100),
        DeviceOptions::new(),
    )
    .await;
    let parts = |a: usize, b: usize| FrameBuf::new(vec![1; a].into(), vec![2; b].into());
    assert!(matches!(
        p.dialer.send_buf(parts(60, 41)).await,
        Err(TransportError::FrameTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        p.dialer.send_buf(parts(0, 0)).await,
        Err(TransportError::EmptyFrame)
    ));
    p.dialer.send_buf(parts(0, 100)).await.unwrap();
    assert_eq!(p.acceptor.recv().await.unwrap(), vec![2; 100]);
    assert!(nothing_arrives(&*p.acceptor).await);
}

#[tokio::test(start_paused = true)]
async fn faults_act_on_the_bytes_of_a_two_part_frame_as_on_one_part() {
    let p = pair(1).await;
    p.handle.inject(&p.a, Fault::TruncateBytes(3)).unwrap();
    p.handle.inject(&p.a, Fault::DropBytes(1)).unwrap();
    let frame = FrameBuf::new(Bytes::from_static(b"head"), Bytes::from_static(b"body"));
    p.dialer.send_buf(frame.clone()).await.unwrap();
    p.dialer.send_buf(frame).await.unwrap();
    assert_eq!(p.acceptor.recv().await.unwrap(), "eadb");
    assert_eq!(
        p.acceptor.recv().await.unwrap(),
        "headbody",
        "the faults were used up"
    );
}

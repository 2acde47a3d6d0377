//! Each fault does what it says, in the direction it was injected into and no other.

mod common;

use std::num::NonZeroU64;
use std::time::Duration;

use acm_transport::TransportError;
use acm_transport_mock::{Fault, MockError};
use bytes::Bytes;
use common::{id, nothing_arrives, pair, recv_n, send_all};
use tokio::time::Instant;

/// How many positions differ between two frames of the same length.
fn differences(a: &[u8], b: &[u8]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

#[tokio::test(start_paused = true)]
async fn drop_frames_discards_the_next_n_frames_in_that_direction_only() {
    let p = pair(1).await;
    p.handle.inject(&p.a, Fault::DropFrames(2)).unwrap();
    send_all(&*p.dialer, &[b"one", b"two", b"three", b"four"]).await;
    send_all(&*p.acceptor, &[b"back"]).await;
    assert_eq!(
        recv_n(&*p.acceptor, 2).await,
        [b"three".to_vec(), b"four".to_vec()]
    );
    assert_eq!(p.dialer.recv().await.unwrap(), "back");
    let stats = p.handle.stats(&p.a).unwrap();
    assert_eq!(
        (
            stats.frames_sent,
            stats.frames_dropped,
            stats.frames_delivered
        ),
        (4, 2, 2)
    );
    assert_eq!((stats.bytes_sent, stats.bytes_delivered), (15, 9));
}

#[tokio::test(start_paused = true)]
async fn drop_bytes_removes_bytes_from_the_start_of_the_next_frames() {
    let p = pair(1).await;
    p.handle.inject(&p.a, Fault::DropBytes(5)).unwrap();
    send_all(&*p.dialer, &[b"abc", b"defgh", b"ijk"]).await;
    // "abc" loses all its bytes and vanishes; "defgh" loses the remaining two.
    assert_eq!(
        recv_n(&*p.acceptor, 2).await,
        [b"fgh".to_vec(), b"ijk".to_vec()]
    );
    assert!(nothing_arrives(&*p.acceptor).await);
    assert_eq!(p.handle.stats(&p.a).unwrap().frames_dropped, 1);
}

#[tokio::test(start_paused = true)]
async fn truncate_frames_leaves_each_of_the_next_n_frames_a_shorter_non_empty_prefix() {
    for seed in 0..20 {
        let p = pair(seed).await;
        p.handle.inject(&p.a, Fault::TruncateFrames(3)).unwrap();
        let long: &'static [u8] = b"0123456789";
        send_all(&*p.dialer, &[long, b"x", long, long]).await;
        let got = recv_n(&*p.acceptor, 4).await;
        for cut in [&got[0], &got[2]] {
            assert!(
                !cut.is_empty() && cut.len() < long.len(),
                "seed {seed}: {cut:?}"
            );
            assert!(long.starts_with(cut));
        }
        assert_eq!(got[1], b"x", "a 1-byte frame cannot lose a tail");
        assert_eq!(got[3], long, "only the next 3 frames are cut");
    }
}

#[tokio::test(start_paused = true)]
async fn truncate_frames_picks_varied_lengths() {
    let p = pair(5).await;
    p.handle.inject(&p.a, Fault::TruncateFrames(20)).unwrap();
    for _ in 0..20 {
        p.dialer.send(Bytes::from(vec![1; 100])).await.unwrap();
    }
    let mut lengths: Vec<_> = recv_n(&*p.acceptor, 20)
        .await
        .iter()
        .map(Vec::len)
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    assert!(lengths.len() > 5, "lengths should vary: {lengths:?}");
}

#[tokio::test(start_paused = true)]
async fn truncate_bytes_cuts_the_next_frame_short_by_n_bytes() {
    let p = pair(1).await;
    p.handle.inject(&p.a, Fault::TruncateBytes(3)).unwrap();
    send_all(&*p.dialer, &[b"abcdef", b"ghi"]).await;
    assert_eq!(
        recv_n(&*p.acceptor, 2).await,
        [b"abc".to_vec(), b"ghi".to_vec()]
    );
    p.handle.inject(&p.a, Fault::TruncateBytes(9)).unwrap();
    send_all(&*p.dialer, &[b"short"]).await;
    assert_eq!(
        p.acceptor.recv().await.unwrap(),
        "s",
        "a truncated frame keeps a byte"
    );
}

#[tokio::test(start_paused = true)]
async fn corrupt_frames_changes_exactly_one_byte_of_each_of_the_next_n_frames() {
    let p = pair(1).await;
    p.handle.inject(&p.a, Fault::CorruptFrames(2)).unwrap();
    let frame: &'static [u8] = &[0x55; 64];
    send_all(&*p.dialer, &[frame, frame, frame]).await;
    let got = recv_n(&*p.acceptor, 3).await;
    assert_eq!(differences(&got[0], frame), 1);
    assert_eq!(differences(&got[1], frame), 1);
    assert_eq!(got[2], frame);
}

#[tokio::test(start_paused = true)]
async fn corrupt_bytes_changes_each_of_the_next_n_bytes_across_frames() {
    let p = pair(1).await;
    p.handle.inject(&p.a, Fault::CorruptBytes(5)).unwrap();
    send_all(&*p.dialer, &[b"abc", b"defg"]).await;
    let got = recv_n(&*p.acceptor, 2).await;
    assert_eq!(differences(&got[0], b"abc"), 3);
    assert_eq!(differences(&got[1][..2], b"de"), 2);
    assert_eq!(&got[1][2..], b"fg");
}

#[tokio::test(start_paused = true)]
async fn latency_delays_each_frame_by_exactly_that_much_and_keeps_the_order() {
    let p = pair(1).await;
    p.handle
        .inject(&p.a, Fault::Latency(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    send_all(&*p.dialer, &[b"first"]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    send_all(&*p.dialer, &[b"second"]).await;

    assert_eq!(p.acceptor.recv().await.unwrap(), "first");
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(p.acceptor.recv().await.unwrap(), "second");
    assert_eq!(start.elapsed(), Duration::from_millis(130));

    // A shorter latency does not let a later frame overtake an earlier one.
    let start = Instant::now();
    send_all(&*p.dialer, &[b"slow"]).await;
    p.handle
        .inject(&p.a, Fault::Latency(Duration::from_millis(10)))
        .unwrap();
    send_all(&*p.dialer, &[b"fast"]).await;
    assert_eq!(
        recv_n(&*p.acceptor, 2).await,
        [b"slow".to_vec(), b"fast".to_vec()]
    );
    assert_eq!(start.elapsed(), Duration::from_millis(100));

    // The other direction has no latency.
    let start = Instant::now();
    send_all(&*p.acceptor, &[b"back"]).await;
    p.dialer.recv().await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn bandwidth_cap_spaces_frames_by_their_length_over_the_rate() {
    let p = pair(1).await;
    let rate = NonZeroU64::new(1_000);
    p.handle.inject(&p.a, Fault::Bandwidth(rate)).unwrap();
    let start = Instant::now();
    for _ in 0..5 {
        p.dialer.send(Bytes::from(vec![0; 100])).await.unwrap();
    }
    for n in 1..=5 {
        p.acceptor.recv().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(100 * n));
    }

    // Latency adds to the crossing time; removing the cap removes the spacing.
    p.handle
        .inject(&p.a, Fault::Latency(Duration::from_millis(50)))
        .unwrap();
    let start = Instant::now();
    p.dialer.send(Bytes::from(vec![0; 200])).await.unwrap();
    p.acceptor.recv().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    p.handle.inject(&p.a, Fault::Bandwidth(None)).unwrap();
    let start = Instant::now();
    p.dialer.send(Bytes::from(vec![0; 200])).await.unwrap();
    p.acceptor.recv().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn bandwidth_cap_limits_throughput_of_a_sender_that_never_stops() {
    let p = pair(1).await;
    p.handle
        .inject(&p.a, Fault::Bandwidth(NonZeroU64::new(10_000)))
        .unwrap();
    let dialer = p.dialer;
    let sender = tokio::spawn(async move {
        for _ in 0..100 {
            dialer.send(Bytes::from(vec![0; 1_000])).await.unwrap();
        }
        dialer
    });
    let start = Instant::now();
    let mut bytes = 0;
    while bytes < 100_000 {
        bytes += p.acceptor.recv().await.unwrap().len();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    let _dialer = sender.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn max_frame_size_fault_changes_the_limit_of_that_direction_only() {
    let p = pair(1).await;
    p.handle.inject(&p.a, Fault::MaxFrameSize(10)).unwrap();
    assert_eq!(p.dialer.max_frame_size(), 10);
    assert_eq!(p.acceptor.max_frame_size(), 65_535);
    assert!(matches!(
        p.dialer.send(Bytes::from(vec![1; 11])).await,
        Err(TransportError::FrameTooLarge { len: 11, max: 10 })
    ));
    p.dialer.send(Bytes::from(vec![1; 10])).await.unwrap();
    p.acceptor.send(Bytes::from(vec![2; 11])).await.unwrap();
    assert_eq!(p.acceptor.recv().await.unwrap().len(), 10);
    assert_eq!(p.dialer.recv().await.unwrap().len(), 11);
    p.handle.inject(&p.a, Fault::MaxFrameSize(100_000)).unwrap();
    p.dialer.send(Bytes::from(vec![1; 70_000])).await.unwrap();
    assert_eq!(p.acceptor.recv().await.unwrap().len(), 70_000);
}

#[tokio::test(start_paused = true)]
async fn stall_holds_frames_in_that_direction_until_unstall() {
    let p = pair(1).await;
    p.handle.inject(&p.b, Fault::Stall).unwrap();
    send_all(&*p.acceptor, &[b"held", b"too"]).await;
    send_all(&*p.dialer, &[b"flows"]).await;
    assert_eq!(p.acceptor.recv().await.unwrap(), "flows");
    assert!(nothing_arrives(&*p.dialer).await);
    assert_eq!(p.handle.stats(&p.b).unwrap().frames_in_flight, 2);
    p.handle.inject(&p.b, Fault::Unstall).unwrap();
    assert_eq!(
        recv_n(&*p.dialer, 2).await,
        [b"held".to_vec(), b"too".to_vec()]
    );
}

#[tokio::test(start_paused = true)]
async fn stall_also_holds_frames_already_in_flight() {
    let p = pair(1).await;
    p.handle
        .inject(&p.a, Fault::Latency(Duration::from_millis(10)))
        .unwrap();
    send_all(&*p.dialer, &[b"sent before the stall"]).await;
    p.handle.inject(&p.a, Fault::Stall).unwrap();
    assert!(nothing_arrives(&*p.acceptor).await);
    p.handle.inject(&p.a, Fault::Unstall).unwrap();
    assert_eq!(p.acceptor.recv().await.unwrap(), "sent before the stall");
}

#[tokio::test(start_paused = true)]
async fn heal_lifts_every_pending_fault() {
    let p = pair(1).await;
    for fault in [
        Fault::Stall,
        Fault::DropFrames(3),
        Fault::CorruptBytes(100),
        Fault::Latency(Duration::from_secs(9)),
        Fault::Bandwidth(NonZeroU64::new(1)),
    ] {
        p.handle.inject(&p.a, fault).unwrap();
    }
    p.handle.inject(&p.a, Fault::Heal).unwrap();
    let start = Instant::now();
    send_all(&*p.dialer, &[b"clean"]).await;
    assert_eq!(p.acceptor.recv().await.unwrap(), "clean");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn faults_from_a_device_that_is_not_on_the_link_are_refused() {
    let p = pair(1).await;
    assert_eq!(
        p.handle.inject(&id("c"), Fault::Stall),
        Err(MockError::NotOnLink(id("c")))
    );
    assert_eq!(
        p.handle.stats(&id("c")).unwrap_err(),
        MockError::NotOnLink(id("c"))
    );
}

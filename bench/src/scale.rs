//! Many sessions at once, and what a small link frame costs on the wire.

use std::time::{Duration, Instant};

use acm::transport::DeviceId;
use acm_transport_mock::{DeviceOptions, MockNetwork};
use acm_wire::{DATA_HEADER_LEN, FIRST_DATA_HEADER_LEN, HEADER_LEN};
use bytes::Bytes;

use crate::alloc::Snapshot;
use crate::report::{Figure, Row};
use crate::world::{
    Side, accept_all, connect, connected_pair, connected_segmented_pair, next_accepted, next_data,
    side,
};

/// The most bytes an idle session may hold, both ends counted.
const IDLE_SESSION_BUDGET: f64 = 8.0 * 1024.0;

/// How the sessions are spread: one hub device and `peers` devices, `sessions` in all.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Sessions in all.
    pub sessions: usize,
    /// Devices the hub connects to; each link carries `sessions / peers` sessions.
    pub peers: usize,
}

/// Waits until `done` holds, looking every millisecond, for at most `limit`.
async fn settle(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Measure 5: `spread.sessions` sessions connected at once from a hub to its peers, over one
/// link per peer. Reports handshakes per second and the memory an idle session holds.
pub async fn many_sessions(spread: Spread) -> Vec<Row> {
    let network = MockNetwork::new(9);
    let hub = side(&network, "hub", DeviceOptions::new());
    let peers: Vec<(String, Side)> = (0..spread.peers)
        .map(|i| {
            let id = format!("peer-{i}");
            let side = side(&network, &id, DeviceOptions::new());
            (id, side)
        })
        .collect();
    let mut accepted: Vec<_> = peers
        .iter()
        .map(|(_, p)| accept_all(&p.app, false))
        .collect();
    // Every link up first: what is measured is the sessions, not the links.
    for ((id, peer), accepted) in peers.iter().zip(&mut accepted) {
        let session = connect(&hub.app, id, "warm-up").await;
        let (theirs, _) = next_accepted(accepted).await;
        let _ = hub.app.destroy_ability_connection_session(session);
        let _ = peer.app.destroy_ability_connection_session(theirs);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    let counting = crate::alloc::count();
    let before = Snapshot::now();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..spread.sessions {
        let (app, peer) = (hub.app.clone(), format!("peer-{}", i % spread.peers));
        tasks.spawn(async move { connect(&app, &peer, &format!("service-{i}")).await });
    }
    let mut ours = Vec::with_capacity(spread.sessions);
    while let Some(session) = tasks.join_next().await {
        ours.push(session.expect("the connect task finished"));
    }
    let elapsed = start.elapsed();
    let mut theirs = Vec::with_capacity(spread.sessions);
    for accepted in &mut accepted {
        while let Ok(one) = accepted.try_recv() {
            theirs.push(one.session);
        }
    }
    // The last accept_connect calls may still be on their way back.
    let (total, mut receivers) = (spread.sessions, accepted);
    let mut pending = Vec::new();
    settle(Duration::from_secs(10), || {
        for accepted in &mut receivers {
            while let Ok(one) = accepted.try_recv() {
                pending.push(one.session);
            }
        }
        theirs.len() + pending.len() >= total
    })
    .await;
    theirs.append(&mut pending);
    drop(tasks);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = Snapshot::now();
    drop(counting);
    let per_session = after.live_since(&before) as f64 / spread.sessions as f64;
    let rate = spread.sessions as f64 / elapsed.as_secs_f64();
    assert_eq!(theirs.len(), spread.sessions, "every session accepted");
    drop((ours, theirs, hub, peers));
    let links = spread.peers;
    vec![
        Row {
            measure: format!("{} concurrent sessions: handshakes", spread.sessions),
            ours: Figure::new(rate, "/s"),
            baseline: None,
            ratio: None,
            target: "reported".into(),
            met: None,
            note: format!(
                "every connect started at once from one hub to {links} peers (one link each, \
                 already up); counted until the last ConnectResult"
            ),
        },
        Row {
            measure: format!(
                "{} concurrent sessions: memory per idle session",
                spread.sessions
            ),
            ours: Figure::new(per_session, "B"),
            baseline: None,
            ratio: None,
            target: "≤ 8 KiB".into(),
            met: Some(per_session <= IDLE_SESSION_BUDGET),
            note: "live heap bytes gained by both devices' runtimes and apps, divided by the \
                   sessions: both ends of each session, no event listeners"
                .into(),
        },
    ]
}

/// The bytes a transfer of `len` bytes takes on a link of `frame`-byte frames, as SPEC
/// sections 3 and 6 lay them out.
pub fn wire_bytes(len: usize, frame: usize) -> usize {
    let first = frame - HEADER_LEN - FIRST_DATA_HEADER_LEN;
    let later = frame - HEADER_LEN - DATA_HEADER_LEN;
    let frames = 1 + len.saturating_sub(first).div_ceil(later);
    len + frames * (HEADER_LEN + DATA_HEADER_LEN) + (FIRST_DATA_HEADER_LEN - DATA_HEADER_LEN)
}

/// The bytes a transfer of `len` bytes puts on a segmented link (SPEC section 16) whose
/// messages hold `message` bytes, when frames hold at most `frame` bytes.
pub fn segmented_wire_bytes(len: usize, frame: usize, message: usize) -> usize {
    let room = message - acm_wire::segment::SEGMENT_HEADER_LEN;
    let mut left = len;
    let mut total = 0;
    let mut header = HEADER_LEN + FIRST_DATA_HEADER_LEN;
    loop {
        let chunk = left.min(frame - header);
        let frame_len = header + chunk;
        total += frame_len + frame_len.div_ceil(room);
        left -= chunk;
        header = HEADER_LEN + DATA_HEADER_LEN;
        if left == 0 {
            return total;
        }
    }
}

/// Sends `len` bytes from `a` (device `from`) and counts what it put on its link to `to`:
/// (bytes, messages).
async fn bytes_for_transfer(
    network: &MockNetwork,
    a: &Side,
    [from, to]: [&str; 2],
    (session, events): (acm::SessionId, &mut acm::EventStream),
    len: usize,
) -> (u64, u64) {
    let (from, to) = (
        DeviceId::new(from).expect("id"),
        DeviceId::new(to).expect("id"),
    );
    let link = network.links(&from, &to).pop().expect("one link");
    let before = link.stats(&from).expect("on the link");
    a.app
        .send_data(session, Bytes::from(vec![1u8; len]))
        .await
        .expect("sent");
    assert_eq!(next_data(events).await, len);
    let after = link.stats(&from).expect("on the link");
    (
        after.bytes_sent - before.bytes_sent,
        after.frames_sent - before.frames_sent,
    )
}

/// Measure 6: the bytes on the link per payload byte for a 64 KiB `send_data` when the link
/// carries messages of at most 244 bytes (a BLE link's), counted by the mock link: with one
/// frame per message, and with frames carried as segments (SPEC section 16).
pub async fn small_frame_overhead() -> Vec<Row> {
    const FRAME: usize = 244;
    const LEN: usize = 64 * 1024;
    let network = MockNetwork::new(10);
    let small = DeviceOptions::new().max_frame_size(FRAME);

    let pair = ["watch", "phone"];
    let (a, _b, session, mut events) =
        connected_pair(&network, pair, small.clone(), "overhead").await;
    let (bytes, frames) = bytes_for_transfer(&network, &a, pair, (session, &mut events), LEN).await;
    let overhead = (bytes as f64 - LEN as f64) / LEN as f64;
    let expected = wire_bytes(LEN, FRAME);
    let one_per_message = Row {
        measure:
            "bytes on the link per payload byte, 64 KiB at 244-byte frames, one frame per message"
                .into(),
        ours: Figure::new(overhead * 100.0, "% overhead"),
        baseline: Some(("payload".into(), Figure::new(LEN as f64, "B"))),
        ratio: Some(crate::harness::Spread::exact(bytes as f64 / LEN as f64)),
        target: "– (see the segmented row)".into(),
        met: None,
        note: format!(
            "{bytes} bytes in {frames} frames for {LEN} payload bytes (SPEC's layout predicts \
             {expected}): a 12-byte frame header and an 8-byte data header (16 on the first) \
             leave 224 of 244 bytes for data, 8.9 % overhead whatever the implementation does"
        ),
    };

    let pair = ["watch-seg", "phone-seg"];
    let (a, _b, session, mut events) =
        connected_segmented_pair(&network, pair, small, "overhead").await;
    let (bytes, messages) =
        bytes_for_transfer(&network, &a, pair, (session, &mut events), LEN).await;
    let overhead = (bytes as f64 - LEN as f64) / LEN as f64;
    let expected = segmented_wire_bytes(LEN, acm::segmented::DEFAULT_MAX_FRAME_SIZE, FRAME);
    let segmented = Row {
        measure: "bytes on the link per payload byte, 64 KiB at 244-byte messages, segmented"
            .into(),
        ours: Figure::new(overhead * 100.0, "% overhead"),
        baseline: Some(("payload".into(), Figure::new(LEN as f64, "B"))),
        ratio: Some(crate::harness::Spread::exact(bytes as f64 / LEN as f64)),
        target: "overhead ≤ 3 %".into(),
        met: Some(overhead <= 0.03),
        note: format!(
            "{bytes} bytes in {messages} messages for {LEN} payload bytes (SPEC's layout \
             predicts {expected}): frames of up to 64 KiB cut into 244-byte segments, one \
             header byte each (SPEC section 16, acm::segmented::Segmented on both devices)"
        ),
    };
    vec![one_per_message, segmented]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layouts_predict_the_bytes_of_a_64_kib_transfer() {
        // One frame per 244-byte message: 293 frames, 20 header bytes each, 8 more on the first.
        assert_eq!(wire_bytes(65_536, 244), 65_536 + 293 * 20 + 8);
        // Two frames (65 535 and 49 bytes) in 270 + 1 segments.
        assert_eq!(segmented_wire_bytes(65_536, 65_535, 244), 65_535 + 49 + 271);
        assert_eq!(segmented_wire_bytes(1, 65_535, 244), 29 + 1);
    }
}

//! The progress of data transfers: `send_data_with_progress` and `Event::DataProgress`.

use std::sync::{Arc, Mutex};

use acm::transport::DeviceId;
use acm::{Event, SendProgress};
use acm_transport_mock::Fault;
use bytes::Bytes;

use crate::harness::{World, next};

const TOTAL: usize = 3 << 20;

fn data() -> Bytes {
    (0..TOTAL)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Receives progress events until the transfer's data (`Some`) or the session's end (`None`).
async fn receive(events: &mut acm::EventStream, seen: &mut Vec<(u64, u64)>) -> Option<Bytes> {
    loop {
        match next(events).await {
            Event::DataProgress {
                received, total, ..
            } => seen.push((received, total)),
            Event::Data { data, .. } => return Some(data),
            Event::Disconnect { .. } => return None,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn assert_monotonic(values: impl IntoIterator<Item = u64>) {
    let values: Vec<u64> = values.into_iter().collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
}

#[tokio::test(start_paused = true)]
async fn progress_grows_on_both_sides_and_ends_at_the_total() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events_with_progress(b).unwrap();
    let sent_reports = Arc::new(Mutex::new(Vec::<SendProgress>::new()));
    let sender = world.a.app.clone();
    let reports = sent_reports.clone();
    let sending = tokio::spawn(async move {
        sender
            .send_data_with_progress(a, data(), |p| reports.lock().unwrap().push(p))
            .await
    });
    let mut seen = Vec::new();
    let got = receive(&mut events, &mut seen).await.expect("the data");
    sending.await.unwrap().unwrap();
    assert_eq!(got, data());

    let total = TOTAL as u64;
    assert!(seen.len() > 2, "{seen:?}");
    assert!(seen.iter().all(|&(_, t)| t == total));
    assert_monotonic(seen.iter().map(|&(r, _)| r));
    assert_eq!(seen.last(), Some(&(total, total)));
    // At most one report per 64 KiB, and one at the end.
    assert!(
        seen.len() as u64 <= total / (64 * 1024) + 1,
        "{}",
        seen.len()
    );

    let sent = sent_reports.lock().unwrap().clone();
    assert!(sent.len() > 1, "{sent:?}");
    assert!(sent.iter().all(|p| p.total == total));
    assert_monotonic(sent.iter().map(|p| p.sent));
    assert_eq!(sent.last(), Some(&SendProgress { sent: total, total }));
}

#[tokio::test(start_paused = true)]
async fn plain_streams_and_send_data_see_no_progress() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    world.a.app.send_data(a, data()).await.unwrap();
    let Event::Data { data: got, .. } = next(&mut events).await else {
        panic!("expected the data first");
    };
    assert_eq!(got.len(), TOTAL);
}

#[tokio::test(start_paused = true)]
async fn a_lost_link_ends_progress_without_completion() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events_with_progress(b).unwrap();
    let phone = DeviceId::new("phone").unwrap();
    let tablet = DeviceId::new("tablet").unwrap();
    let link = world.network.links(&phone, &tablet)[0].clone();
    link.inject(&phone, Fault::Bandwidth(std::num::NonZeroU64::new(1 << 20)))
        .unwrap();
    let sent_reports = Arc::new(Mutex::new(Vec::<SendProgress>::new()));
    let sender = world.a.app.clone();
    let reports = sent_reports.clone();
    let sending = tokio::spawn(async move {
        sender
            .send_data_with_progress(a, data(), |p| reports.lock().unwrap().push(p))
            .await
    });
    // Some of the transfer arrives, then the link goes.
    let Event::DataProgress {
        received, total, ..
    } = next(&mut events).await
    else {
        panic!("expected progress");
    };
    assert!(received < total);
    link.lose("walked out of range");
    let mut seen = vec![(received, total)];
    assert_eq!(receive(&mut events, &mut seen).await, None);
    assert!(seen.iter().all(|&(r, t)| r < t), "{seen:?}");
    assert_monotonic(seen.iter().map(|&(r, _)| r));
    let err = sending.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            acm::AcmError::SessionEnded {
                reason: acm::DisconnectReason::NetworkDisconnected,
                ..
            }
        ),
        "{err:?}"
    );
    let sent = sent_reports.lock().unwrap().clone();
    assert!(sent.iter().all(|p| p.sent < p.total), "{sent:?}");
    assert_monotonic(sent.iter().map(|p| p.sent));
}

//! The device's work per request stays flat as requests and links grow: no request costs a
//! look at every other request, session or link.

use std::time::Duration;

use acm_engine::EngineConfig;
use acm_engine::device::DeviceEvent;
use acm_wire::pb::{self, ConnectErrorCode};

use crate::harness::*;

/// `links` devices each dial the hub and send `per_link` requests for as many services; the
/// hub's app accepts a third of them, rejects a third and lets the rest expire. Returns the
/// hub's units of work per request, and checks that every request was answered.
fn work_per_request(links: usize, per_link: usize) -> f64 {
    let names: Vec<String> = (0..links).map(|i| format!("d{i:03}")).collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push("hub");
    let config = EngineConfig::default().with_max_sessions(per_link + 16);
    let mut net = Net::with(&all, config);
    for name in &names {
        net.link(name, "hub");
    }
    net.take("hub");
    let mut token = 0u128;
    let now = net.now;
    for name in &names {
        let d = net.index(name);
        for s in 0..per_link {
            let service = format!("s{s}");
            let session = net.devices[d].create_session(
                app(name, &service),
                app("hub", &service),
                pb::ConnectOptions::default(),
            );
            token += 1;
            net.devices[d]
                .connect(session, token.to_be_bytes(), now)
                .expect("sent");
        }
    }
    let work_before = net.device("hub").work();
    net.pump();
    let requests = Net::requests(&net.take("hub"));
    assert_eq!(requests.len(), links * per_link);
    for (i, request) in requests.iter().enumerate() {
        match i % 3 {
            0 => {
                net.accept("hub", request);
            }
            1 => {
                let now = net.now;
                net.device("hub")
                    .reject(
                        &request.token,
                        BUNDLE,
                        ConnectErrorCode::PeerAppRejected,
                        "no",
                        now,
                    )
                    .expect("rejected");
            }
            _ => {}
        }
    }
    net.pump();
    // The rest expire at the requesters (10 s) and are withdrawn.
    net.advance(Duration::from_secs(21));
    assert_eq!(net.device("hub").pending_requests(), 0);
    let answered: usize = names
        .iter()
        .map(|name| {
            net.take(name)
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        DeviceEvent::Connected { .. } | DeviceEvent::ConnectFailed { .. }
                    )
                })
                .count()
        })
        .sum();
    assert_eq!(answered, links * per_link, "every connect ended once");
    (net.device("hub").work() - work_before) as f64 / (links * per_link) as f64
}

#[test]
fn work_per_request_stays_flat_from_1_000_to_100_000_requests_across_100_links() {
    let small = work_per_request(100, 10);
    let large = work_per_request(100, 1000);
    assert!(small > 0.0);
    let ratio = large / small;
    eprintln!(
        "work per request: {small:.2} at 1 000 requests, {large:.2} at 100 000 ({ratio:.3}x)"
    );
    assert!(
        ratio < 1.25,
        "work per request grew {ratio:.2}x: {small:.2} -> {large:.2}"
    );
}

#[test]
fn work_per_request_does_not_grow_with_the_number_of_links() {
    let few = work_per_request(2, 500);
    let many = work_per_request(100, 10);
    let ratio = many / few;
    assert!(ratio < 1.25, "{few:.2} on 2 links, {many:.2} on 100 links");
}

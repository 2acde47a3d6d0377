//! A device under a flood of requests that its app never answers still serves a new client at
//! once: the flood costs each of its links its own places (SPEC `SESS-8`), never the device's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use acm::{ConnectErrorCode, DeviceConfig, Event};
use acm_transport_mock::{DeviceOptions, MockNetwork};
use tokio::task::JoinSet;

use crate::harness::*;

/// Attacking devices, each with one link to the tablet.
const ATTACKERS: usize = 10;
/// Requests each attacker sends, for as many services, none of which the tablet answers.
const REQUESTS: usize = 4000;

#[tokio::test(start_paused = true)]
async fn a_new_client_is_served_while_ten_links_of_4000_requests_wait_and_expire() {
    let network = MockNetwork::new(3);
    let config = DeviceConfig::default();
    let tablet = side(&network, "tablet", DeviceOptions::new(), config.clone());
    // Requests for SERVICE are accepted; every other service's are taken and never answered.
    let mut accepted = accept_where(&tablet.app, |request| {
        request.peer_info.service_name == SERVICE
    });

    let expired = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut flood = JoinSet::new();
    let mut attackers = Vec::new();
    for a in 0..ATTACKERS {
        let attacker = side(
            &network,
            &format!("attacker{a}"),
            DeviceOptions::new(),
            config.clone(),
        );
        for r in 0..REQUESTS {
            let app = attacker.app.clone();
            let (expired, refused) = (expired.clone(), refused.clone());
            flood.spawn(async move {
                let session = session_towards(&app, "tablet", &format!("s{r}"));
                let result = app.connect(session).await.unwrap();
                assert!(!result.is_connected);
                let counter = match result.error_code {
                    Some(ConnectErrorCode::SystemInternalError) => &expired,
                    _ => &refused,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            });
        }
        attackers.push(attacker);
    }
    // The flood is under way: each attacker's link is up and its requests are in.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(expired.load(Ordering::Relaxed), 0);

    let phone = side(&network, "phone", DeviceOptions::new(), config);
    let session = session_towards(&phone.app, "tablet", SERVICE);
    let result = phone.app.connect(session).await.unwrap();
    assert!(result.is_connected, "{result:?}");
    let served = accepted.recv().await.expect("the tablet accepted");
    let mut events = tablet.app.events(served).unwrap();
    phone
        .app
        .send_message(session, "still there?")
        .await
        .unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Message {
            session_id: served,
            msg: "still there?".into()
        }
    );
    // Served while every request of the flood still waited for the tablet's app.
    assert_eq!(expired.load(Ordering::Relaxed), 0);

    while let Some(done) = flood.join_next().await {
        done.expect("an attacker's connect ended");
    }
    let (expired, refused) = (
        expired.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    assert_eq!(expired + refused, ATTACKERS * REQUESTS);
    // The tablet took as many as a link may have waiting, and they expired unanswered.
    assert!(
        expired >= ATTACKERS * 64,
        "{expired} expired, {refused} refused"
    );
    drop(attackers);
}

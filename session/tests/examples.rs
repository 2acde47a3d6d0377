//! The examples say what happens, in the order it happens, in words rather than `Debug`.

use std::sync::{Arc, Mutex};

#[path = "../examples/collaborate.rs"]
#[allow(dead_code)]
mod collaborate;

#[path = "../examples/handshake.rs"]
#[allow(dead_code)]
mod handshake;

#[tokio::test]
async fn collaborate_tells_each_side_in_order_and_in_words() {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    collaborate::run(Arc::new(move |line| sink.lock().unwrap().push(line)))
        .await
        .unwrap();
    let lines = lines.lock().unwrap().clone();
    let at = |start: &str| {
        lines
            .iter()
            .position(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} in {lines:#?}"))
    };
    assert!(at("[B] connect event") < at("[B] receiveMessage"));
    assert!(at("[B] receiveMessage") < at("[B] receiveData"));
    assert!(at("[B] receiveData") < at("[A] receiveMessage"));
    assert!(at("[A] receiveMessage") < at("[A] disconnected"));
    assert!(at("[A] disconnected") < at("[B] disconnect event"));
    assert_eq!(lines[at("[A] connect:")], "[A] connect: connected");
    assert!(
        lines[at("[B] disconnect event")].ends_with("PEER_APP_CLOSE_COLLABORATION"),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(!line.contains('{') && !line.contains("Some("), "{line}");
    }
}

#[test]
fn handshake_names_the_requesting_app_in_words() {
    let peer = acm::wire::pb::PeerInfo {
        device_id: "phone-1".into(),
        bundle_name: "com.example.notes".into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: "notes-sync".into(),
    };
    assert_eq!(
        handshake::app(&peer),
        "phone-1/com.example.notes/entry/EntryAbility for service notes-sync"
    );
}

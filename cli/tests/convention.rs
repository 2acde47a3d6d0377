//! The file convention (SPEC section 18) spoken to `acm listen --save-dir` by a sender written
//! with the `acm` library, as another implementation would: what the listener answers, and
//! that a file whose bytes do not match its SHA-256 leaves nothing behind.

mod support;

use acm::transport::DeviceId;
use acm::{ConnectOptions, Context, Device, DeviceConfig, Event, PeerInfo, Security};
use acm_transport_tcp::TcpTransport;
use bytes::Bytes;
use serde_json::{Value, json};
use support::{Running, all_files, scratch};

/// The next message of the convention from the listener.
async fn next_message(events: &mut acm::EventStream) -> Value {
    loop {
        match events.next().await.expect("the session goes on") {
            Event::Message { msg, .. } => return serde_json::from_str(&msg).expect("JSON"),
            Event::Disconnect { reason, .. } => panic!("disconnected: {}", reason.name()),
            _ => {}
        }
    }
}

#[test]
fn chunks_whose_sha256_does_not_match_leave_no_file() {
    let dir = scratch("convention");
    let save = dir.join("save");
    let mut listener = Running::start(&[
        "listen",
        "--listen",
        "tcp://127.0.0.1:0",
        "--service",
        "files",
        "--insecure",
        "--json",
        "--save-dir",
        save.to_str().unwrap(),
    ]);
    let line = listener.expect("\"event\":\"listening\"");
    let listening: Value = serde_json::from_str(&line).unwrap();
    let address = listening["address"].as_str().unwrap();
    let address = address.strip_prefix("tcp://").unwrap().parse().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let transport = TcpTransport::client(DeviceId::new("other-stack").unwrap());
        transport.add_peer(DeviceId::new("acm-listener").unwrap(), address);
        let device = Device::new(
            transport,
            DeviceConfig::default().with_security(Security::Insecure),
        );
        let context = Context::new("com.example.acm", "entry", "EntryAbility");
        let app = device.manager(&context);
        let peer = PeerInfo::new("acm-listener", "com.example.acm", "entry", "EntryAbility");
        let options = ConnectOptions {
            need_send_data: Some(true),
            ..ConnectOptions::default()
        };
        let session = app
            .create_session("files", &context, peer, options)
            .unwrap();
        let mut events = session.events().unwrap();
        session.connect().await.expect("connected");

        let header = json!({ "acm-file": { "version": 2, "name": "bad.bin", "length": 6 } });
        session.send_message(&header.to_string()).await.unwrap();
        let ready = next_message(&mut events).await;
        assert_eq!(ready["acm-file-ready"]["offset"], 0, "{ready}");
        assert!(ready["acm-file-ready"]["max_chunk"].as_u64().unwrap() >= 1);
        let data = json!({ "acm-file-data": { "offset": 0 } });
        session.send_message(&data.to_string()).await.unwrap();
        session.send_data(Bytes::from_static(b"abc")).await.unwrap();
        session.send_data(Bytes::from_static(b"def")).await.unwrap();
        // Not the SHA-256 of what was sent.
        let wrong = "6a5e3ddc0d4b8d1c2c0f1d3e3b6b7ed6f1a7c8b4d1b7e1a8c9e5b4e8c6a3d2f1";
        let end = json!({ "acm-file-end": { "sha256": wrong } });
        session.send_message(&end.to_string()).await.unwrap();
        let result = next_message(&mut events).await;
        assert_eq!(result["acm-file-result"]["saved"], false, "{result}");
        let why = result["acm-file-result"]["why"].as_str().unwrap();
        assert!(why.starts_with("checksum mismatch"), "{why}");

        // More bytes than announced are refused too.
        let header = json!({ "acm-file": { "version": 2, "name": "long.bin", "length": 2 } });
        session.send_message(&header.to_string()).await.unwrap();
        next_message(&mut events).await;
        session.send_message(&data.to_string()).await.unwrap();
        session.send_data(Bytes::from_static(b"abc")).await.unwrap();
        let result = next_message(&mut events).await;
        assert_eq!(result["acm-file-result"]["saved"], false, "{result}");

        // A version it does not speak, and a path for a name, are refused at once.
        for header in [
            json!({ "acm-file": { "version": 3, "name": "a", "length": 1 } }),
            json!({ "acm-file": { "version": 2, "name": "../a", "length": 1 } }),
        ] {
            session.send_message(&header.to_string()).await.unwrap();
            let result = next_message(&mut events).await;
            assert_eq!(result["acm-file-result"]["saved"], false, "{result}");
        }
        session.disconnect().unwrap();
        device.close().await;
    });
    listener.expect("\"event\":\"disconnect\"");
    assert!(all_files(&save).is_empty(), "{:?}", all_files(&save));
    let _ = std::fs::remove_dir_all(&dir);
}

//! Device A's app connects to its twin on device B; B's ability accepts; they exchange a
//! message and 1 MiB of data; A disconnects. Both sides print what happens.
//!
//! Run with `cargo run -p acm --example collaborate`.

use std::error::Error;

use acm::transport::DeviceId;
use acm::{CollaborateResult, ConnectOptions, Context, Device, DeviceConfig, Event, PeerInfo};
use acm_transport_mock::MockNetwork;
use bytes::Bytes;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let network = MockNetwork::new(2024);
    let a = Device::new(
        network.add_device(DeviceId::new("phone-a")?)?,
        DeviceConfig::default(),
    );
    let b = Device::new(
        network.add_device(DeviceId::new("tablet-b")?)?,
        DeviceConfig::default(),
    );
    let context = Context::new("com.example.photos", "entry", "EntryAbility");
    let app_a = a.manager(&context);
    let app_b = b.manager(&context);

    // B: onCollaborate creates a session for the caller and accepts it.
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let (manager, ctx) = (app_b.clone(), context.clone());
    app_b.register_ability("entry", "EntryAbility", move |request| {
        println!(
            "[B] onCollaborate from {}/{} (token {})",
            request.peer_info.device_id, request.peer_info.bundle_name, request.token
        );
        let (manager, ctx, ready_tx) = (manager.clone(), ctx.clone(), ready_tx.clone());
        tokio::spawn(async move {
            let peer = request.peer_info.clone();
            let service = peer.service_name.clone();
            let session = manager
                .create_ability_connection_session(&service, &ctx, peer, request.connect_options)
                .expect("B creates its session");
            let mut events = manager.events(session).expect("events of B's session");
            manager
                .accept_connect(session, &request.token)
                .await
                .expect("B accepts");
            println!("[B] accepted; session {session}");
            let _ = ready_tx.send(());
            while let Some(event) = events.next().await {
                match event {
                    Event::Connect { .. } => println!("[B] connect event"),
                    Event::Message { msg, .. } => {
                        println!("[B] receiveMessage: {msg:?}");
                        manager
                            .send_message(session, "got it")
                            .await
                            .expect("B answers");
                    }
                    Event::Data { data, .. } => {
                        let sum: u64 = data.iter().map(|b| u64::from(*b)).sum();
                        println!("[B] receiveData: {} bytes, byte sum {sum}", data.len());
                    }
                    Event::Disconnect { reason, .. } => {
                        println!("[B] disconnect event: {reason}");
                        break;
                    }
                    other => println!("[B] {other:?}"),
                }
            }
        });
        CollaborateResult::Accept
    });

    // A: create a session for B's twin and connect.
    let peer = PeerInfo::new("tablet-b", "com.example.photos", "entry", "EntryAbility");
    let options = ConnectOptions {
        need_send_data: Some(true),
        ..ConnectOptions::default()
    };
    let session =
        app_a.create_ability_connection_session("photo-share", &context, peer, options)?;
    println!("[A] created session {session}");
    let mut events = app_a.events(session)?;
    let result = app_a.connect(session).await?;
    println!("[A] connect -> {result:?}");
    if !result.is_connected {
        return Err("the connection failed".into());
    }
    ready.recv().await;

    app_a.send_message(session, "here come the photos").await?;
    let data = Bytes::from(
        (0..1u32 << 20)
            .map(|i| (i % 256) as u8)
            .collect::<Vec<u8>>(),
    );
    app_a.send_data(session, data).await?;
    println!("[A] sent 1 MiB");
    loop {
        match events.next().await {
            Some(Event::Message { msg, .. }) => {
                println!("[A] receiveMessage: {msg:?}");
                break;
            }
            Some(other) => println!("[A] {other:?}"),
            None => return Err("A's session ended".into()),
        }
    }
    app_a.disconnect(session)?;
    println!("[A] disconnected");
    // Give B a moment to print its disconnect event.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(())
}

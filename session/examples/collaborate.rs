//! Device A's app connects to its twin on device B; B's ability accepts; A sends a message and
//! 1 MiB of data, B answers once it has both, and A disconnects. Both sides print what happens,
//! in the order it happens.
//!
//! Run with `cargo run -p acm --example collaborate`.

use std::error::Error;
use std::sync::Arc;

use acm::bytes::Bytes;
use acm::transport::DeviceId;
use acm::{
    CollaborateResult, ConnectOptions, ConnectResult, Context, Device, DeviceConfig, Event,
    PeerInfo,
};
use acm_transport_mock::MockNetwork;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    run(Arc::new(|line| println!("{line}"))).await
}

/// Where the example's lines go.
pub(crate) type Say = Arc<dyn Fn(String) + Send + Sync>;

/// The example, telling what happens to `say`.
pub(crate) async fn run(say: Say) -> Result<(), Box<dyn Error>> {
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

    // B: onCollaborate creates a session for the caller, listens to it, and accepts it. B's
    // side runs in a task of its own, which main awaits at the end.
    let (task_tx, mut task) = tokio::sync::mpsc::unbounded_channel();
    let (manager, ctx, say_b) = (app_b.clone(), context.clone(), say.clone());
    app_b.register_ability("entry", "EntryAbility", move |request| {
        let peer = &request.peer_info;
        say_b(format!(
            "[B] onCollaborate from {}/{} (token {})",
            peer.device_id, peer.bundle_name, request.token
        ));
        let (manager, ctx, say) = (manager.clone(), ctx.clone(), say_b.clone());
        let handle = tokio::spawn(async move {
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
            say(format!("[B] accepted; session {session}"));
            let mut got = (false, false);
            while let Some(event) = events.next().await {
                match event {
                    Event::Connect { .. } => say("[B] connect event".into()),
                    Event::Message { msg, .. } => {
                        say(format!("[B] receiveMessage: {msg:?}"));
                        got.0 = true;
                    }
                    Event::Data { data, .. } => {
                        let sum: u64 = data.iter().map(|b| u64::from(*b)).sum();
                        say(format!(
                            "[B] receiveData: {} bytes, byte sum {sum}",
                            data.len()
                        ));
                        got.1 = true;
                    }
                    Event::Disconnect { reason, .. } => {
                        say(format!("[B] disconnect event: {reason}"));
                        break;
                    }
                    Event::Collaborate { info, .. } => {
                        say(format!("[B] collaborateEvent: {}", info.event_type));
                    }
                    _ => {}
                }
                if got == (true, true) {
                    got = (false, false);
                    manager
                        .send_message(session, "got the message and the photos")
                        .await
                        .expect("B answers");
                }
            }
        });
        let _ = task_tx.send(handle);
        CollaborateResult::Accept
    });

    // A: create a session for B's twin, listen to it, and connect.
    let peer = PeerInfo::new("tablet-b", "com.example.photos", "entry", "EntryAbility");
    let options = ConnectOptions {
        need_send_data: Some(true),
        ..ConnectOptions::default()
    };
    let session =
        app_a.create_ability_connection_session("photo-share", &context, peer, options)?;
    say(format!("[A] created session {session}"));
    let mut events = app_a.events(session)?;
    let result = app_a.connect(session).await?;
    say(format!("[A] connect: {}", describe(&result)));
    if !result.is_connected {
        return Err("the connection failed".into());
    }

    app_a.send_message(session, "here come the photos").await?;
    let data = Bytes::from(
        (0..1u32 << 20)
            .map(|i| (i % 256) as u8)
            .collect::<Vec<u8>>(),
    );
    app_a.send_data(session, data).await?;
    say("[A] sent 1 MiB".into());
    loop {
        match events.next().await {
            Some(Event::Message { msg, .. }) => {
                say(format!("[A] receiveMessage: {msg:?}"));
                break;
            }
            Some(Event::Connect { .. }) => say("[A] connect event".into()),
            Some(_) => {}
            None => return Err("A's session ended".into()),
        }
    }
    app_a.disconnect(session)?;
    say("[A] disconnected".into());
    // B's side ends with its disconnect event.
    if let Some(b_side) = task.recv().await {
        b_side.await?;
    }
    // Both devices close their links once what they sent has gone.
    a.close().await;
    b.close().await;
    Ok(())
}

/// A connect's result as the reference's app would log it.
fn describe(result: &ConnectResult) -> String {
    match (&result.error_code, &result.reason) {
        _ if result.is_connected => "connected".into(),
        (Some(code), Some(reason)) => format!("failed, {code}: {reason}"),
        (Some(code), None) => format!("failed, {code}"),
        (None, _) => "failed".into(),
    }
}

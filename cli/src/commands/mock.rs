//! The mock transport's demo: the mock cannot span processes, so a second device, with an app
//! that accepts every request and echoes every message, runs in this process.

use acm::{CollaborateResult, Device, DeviceConfig, Event};
use acm_transport_mock::MockNetwork;

use crate::common::{AppName, CliError, DEFAULT_APP, device_id};
use crate::receive::{Claims, Inbound};
use crate::transfer::FileMessage;

/// The demo peer's device id.
pub const DEMO_PEER: &str = "mock-peer";

/// A network with this process's device and the demo peer.
pub struct Demo {
    /// The network (dropping it ends the devices' links).
    _network: MockNetwork,
    /// The demo peer.
    _peer: Device,
}

/// A network with `local` and the demo peer, whose app echoes.
pub fn demo_network(local: &str) -> Result<(Demo, Device), CliError> {
    let network = MockNetwork::new(1);
    let add = |id: &str| -> Result<Device, CliError> {
        let transport = network
            .add_device(device_id(id)?)
            .map_err(|e| CliError::cannot_run(format!("cannot add {id} to the mock: {e}")))?;
        Ok(Device::new(transport, DeviceConfig::default()))
    };
    let device = add(local)?;
    let peer = add(DEMO_PEER)?;
    serve_echo(&peer);
    let demo = Demo {
        _network: network,
        _peer: peer,
    };
    Ok((demo, device))
}

/// The demo peer's app: accepts every request for the default app, echoes messages, and
/// answers file transfers (verified, not saved: see [`receive`]).
fn serve_echo(peer: &Device) {
    let Ok(app_name) = DEFAULT_APP.parse::<AppName>() else {
        return;
    };
    let context = app_name.context();
    let app = peer.manager(&context);
    let manager = app.clone();
    app.register_ability(&app_name.module, &app_name.ability, move |request| {
        let (app, context) = (manager.clone(), context.clone());
        tokio::spawn(async move {
            let service = request.peer_info.service_name.clone();
            let Ok(session) = app.create_ability_connection_session(
                &service,
                &context,
                request.peer_info.clone(),
                request.connect_options.clone(),
            ) else {
                return;
            };
            let Ok(mut events) = app.events(session) else {
                return;
            };
            if app.accept_connect(session, &request.token).await.is_err() {
                return;
            }
            let (mut inbound, claims) = (None, Claims::default());
            while let Some(event) = events.next().await {
                let reply = match event {
                    Event::Message { msg, .. } => match FileMessage::parse(&msg) {
                        Some(message) => receive(message, &mut inbound, &claims),
                        None => Some(format!("echo: {msg}")),
                    },
                    Event::Data { data, .. } => match inbound.as_mut().map(|i| i.write(&data)) {
                        Some(Ok(())) if inbound.as_ref().is_some_and(Inbound::v1_complete) => {
                            inbound
                                .take()
                                .map(|i| FileMessage::Result(i.finish(None, false)).to_message())
                        }
                        Some(Ok(())) => None,
                        Some(Err(why)) => Some(FileMessage::Result(Err(why)).to_message()),
                        None => None,
                    },
                    Event::Disconnect { .. } => break,
                    _ => None,
                };
                if let Some(reply) = reply {
                    let _ = app.send_message(session, &reply).await;
                }
            }
            let _ = app.destroy_ability_connection_session(session);
        });
        CollaborateResult::Accept
    });
    // The handler holds a clone of the manager, so the app lives on with the device.
}

/// The demo peer's side of the file convention: files are verified, not saved. Returns the
/// answer to send, if any.
fn receive(message: FileMessage, inbound: &mut Option<Inbound>, claims: &Claims) -> Option<String> {
    let answer = match message {
        FileMessage::Header(header) => match Inbound::open(header, None, claims) {
            Ok(opened) => {
                let ready = (opened.header().version != 1)
                    .then(|| opened.ready(DeviceConfig::default().engine.limits.max_data_size));
                *inbound = Some(opened);
                return ready.map(|r| r.to_message());
            }
            Err(why) => Err(why),
        },
        FileMessage::Data { offset } => match inbound.as_mut().map(|i| i.start(offset)) {
            Some(Ok(())) => return None,
            Some(Err(why)) => Err(why),
            None => Err("acm-file-data before acm-file".into()),
        },
        FileMessage::End { sha256 } => match inbound.take() {
            Some(i) => i.finish(Some(&sha256), false),
            None => Err("acm-file-end before acm-file".into()),
        },
        FileMessage::Ready { .. } | FileMessage::Result(_) => return None,
    };
    Some(FileMessage::Result(answer).to_message())
}

//! The mock transport's demo: the mock cannot span processes, so a second device, with an app
//! that accepts every request and echoes every message, runs in this process.

use acm::{CollaborateResult, Device, DeviceConfig, Event};
use acm_transport_mock::MockNetwork;

use crate::common::{AppName, CliError, DEFAULT_APP, device_id};
use crate::transfer::{FileHeader, result_message, sha256_hex};

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
/// answers file transfers (verified, not saved).
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
            let mut header = None;
            while let Some(event) = events.next().await {
                match event {
                    Event::Message { msg, .. } => {
                        if let Some(file) = FileHeader::from_message(&msg) {
                            header = Some(file);
                        } else {
                            let _ = app.send_message(session, &format!("echo: {msg}")).await;
                        }
                    }
                    Event::Data { data, .. } => {
                        let result = match header.take() {
                            Some(h)
                                if h.length == data.len() as u64
                                    && h.sha256 == sha256_hex(&data) =>
                            {
                                Ok(std::path::PathBuf::from(h.name))
                            }
                            _ => Err("the data does not match its announcement".to_string()),
                        };
                        let _ = app.send_message(session, &result_message(&result)).await;
                    }
                    Event::Disconnect { .. } => break,
                    _ => {}
                }
            }
            let _ = app.destroy_ability_connection_session(session);
        });
        CollaborateResult::Accept
    });
    // The handler holds a clone of the manager, so the app lives on with the device.
}

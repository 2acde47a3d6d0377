//! `acm listen`: an app that accepts (or rejects) collaboration requests and prints every event;
//! with `--save-dir`, it saves the files `acm send` sends.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use acm::{AbilityConnectionManager, CollaborateRequest, CollaborateResult, Event, SessionId};
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

use crate::common::{
    AppName, CliError, DEFAULT_APP, Interrupt, NetArgs, Out, TransportKind, ble_device,
    close_device, tcp_device,
};
use crate::security::Pairing;
use crate::transfer::{FileHeader, Meter, result_message, save, size};

/// The options of `acm listen`.
#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    #[command(flatten)]
    net: NetArgs,
    /// The app that listens, as BUNDLE/MODULE/ABILITY.
    #[arg(long = "as", default_value = DEFAULT_APP, value_name = "BUNDLE/MODULE/ABILITY")]
    app: AppName,
    /// The service to accept requests for; requests for others are rejected.
    #[arg(long)]
    service: String,
    /// Reject every request with this reason (the requester sees PEER_APP_REJECTED).
    #[arg(long)]
    reject: Option<String>,
    /// Save the files sent with `acm send` in this directory.
    #[arg(long)]
    save_dir: Option<PathBuf>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// The sessions connected now, to send typed lines to.
type Connected = Arc<Mutex<Vec<SessionId>>>;

/// Runs `acm listen`.
pub async fn run(args: &ListenArgs) -> Result<(), CliError> {
    let mut interrupt = Interrupt::watch();
    let out = Out { json: args.json };
    match args.net.transport {
        TransportKind::Tcp if args.net.listen.is_none() => {
            return Err(CliError::cannot_run(
                "acm listen needs --listen tcp://HOST:PORT",
            ));
        }
        TransportKind::Mock => {
            return Err(CliError::cannot_run(
                "the mock transport cannot span processes; try `acm chat --transport mock`, which runs both devices",
            ));
        }
        TransportKind::Tcp | TransportKind::Ble => {}
    }
    if let Some(dir) = &args.save_dir
        && !dir.is_dir()
    {
        return Err(CliError::cannot_run(format!(
            "--save-dir {} is not a directory",
            dir.display()
        )));
    }
    let (device, mut fields, place) = if args.net.transport == TransportKind::Ble {
        let device = ble_device(&args.net, "acm-listener", true).await?;
        let hci = args.net.hci.clone().unwrap_or_default();
        let place = format!("advertising over Bluetooth LE (controller {hci})");
        (device, json!({ "transport": "ble", "hci": hci }), place)
    } else {
        let (device, local) = tcp_device(&args.net, "acm-listener", None).await?;
        let address = local.map(|a| format!("tcp://{a}")).unwrap_or_default();
        let place = format!("listening on {address}");
        (
            device,
            json!({ "transport": "tcp", "address": address }),
            place,
        )
    };
    let app = device.manager(&args.app.context());
    let connected: Connected = Arc::default();
    register(args, &app, out, &connected);
    let id = device.id().to_string();
    fields["device"] = json!(id);
    fields["service"] = json!(args.service);
    out.line("listening", fields, || {
        format!(
            "acm listen: device {id} {place} as {}/{}/{}, service {}",
            args.app.bundle, args.app.module, args.app.ability, args.service
        )
    });
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut pairing = Pairing::new(&device, &args.net.security, out);
    loop {
        tokio::select! {
            () = interrupt.wait() => break,
            () = pairing.next() => {}
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) if pairing.answer(&line) => {}
                Ok(Some(line)) => {
                    let sessions = connected.lock().map(|s| s.clone()).unwrap_or_default();
                    for session in sessions {
                        if let Err(err) = app.send_message(session, &line).await {
                            out.line("error", json!({ "message": err.to_string() }), || format!("acm: {err}"));
                        }
                    }
                }
                _ => stdin_open = false,
            },
        }
    }
    let sessions = connected.lock().map(|s| s.clone()).unwrap_or_default();
    for session in sessions {
        let _ = app.disconnect(session);
    }
    close_device(&device).await;
    Ok(())
}

fn register(args: &ListenArgs, app: &AbilityConnectionManager, out: Out, connected: &Connected) {
    let manager = app.clone();
    let context = args.app.context();
    let service = args.service.clone();
    let reject = args.reject.clone();
    let save_dir = args.save_dir.clone();
    let connected = connected.clone();
    app.register_ability(
        &args.app.module,
        &args.app.ability,
        move |request: CollaborateRequest| {
            let from = &request.peer_info;
            let peer = from.device_id.clone();
            let asked = from.service_name.clone();
            out.line(
                "request",
                json!({
                    "peer": peer,
                    "app": format!("{}/{}/{}", from.bundle_name, from.module_name, from.ability_name),
                    "service": asked,
                }),
                || format!("request from {peer} ({}) for service {asked}", from.bundle_name),
            );
            let refusal = match &reject {
                Some(reason) => Some(reason.clone()),
                None if asked != service => Some(format!("no service {asked:?} here")),
                None => None,
            };
            if let Some(reason) = refusal {
                out.line("rejected", json!({ "peer": peer, "reason": reason }), || {
                    format!("rejected {peer}: {reason}")
                });
                return CollaborateResult::Reject { reason };
            }
            let serving = Serving {
                app: manager.clone(),
                out,
                save_dir: save_dir.clone(),
                connected: connected.clone(),
            };
            let context = context.clone();
            tokio::spawn(async move {
                if let Err(err) = serving.serve(request, &context).await {
                    out.line("error", json!({ "message": err.to_string() }), || {
                        format!("acm: {err}")
                    });
                }
            });
            CollaborateResult::Accept
        },
    );
}

/// What serving one session needs.
struct Serving {
    app: AbilityConnectionManager,
    out: Out,
    save_dir: Option<PathBuf>,
    connected: Connected,
}

impl Serving {
    async fn serve(
        self,
        request: CollaborateRequest,
        context: &acm::Context,
    ) -> Result<(), acm::AcmError> {
        let peer = request.peer_info.device_id.clone();
        let session = self.app.create_ability_connection_session(
            &request.peer_info.service_name,
            context,
            request.peer_info.clone(),
            request.connect_options.clone(),
        )?;
        let mut events = self.app.events_with_progress(session)?;
        self.app.accept_connect(session, &request.token).await?;
        if let Ok(mut connected) = self.connected.lock() {
            connected.push(session);
        }
        let mut file: Option<(FileHeader, Meter)> = None;
        while let Some(event) = events.next().await {
            match &event {
                Event::Message { msg, .. } if self.save_dir.is_some() => {
                    if let Some(header) = FileHeader::from_message(msg) {
                        self.out.line(
                            "file",
                            json!({ "peer": peer, "name": header.name, "length": header.length, "sha256": header.sha256 }),
                            || format!("{peer} sends {} ({})", header.name, size(header.length)),
                        );
                        let meter = Meter::new(self.out, "receiving", &header.name, header.length);
                        file = Some((header, meter));
                        continue;
                    }
                    self.out.event(&peer, &event);
                }
                Event::DataProgress { received, .. } => {
                    if let Some((_, meter)) = &mut file {
                        meter.update(*received);
                    }
                }
                Event::Data { data, .. } if file.is_some() => {
                    if let (Some((header, _)), Some(dir)) = (file.take(), &self.save_dir) {
                        let result = save(dir, &header, data);
                        self.report_saved(&peer, &header, &result);
                        let _ = self
                            .app
                            .send_message(session, &result_message(&result))
                            .await;
                    }
                }
                Event::Disconnect { .. } => {
                    if let Some((header, meter)) = file.take() {
                        meter.abandon();
                        self.out.line(
                            "file-lost",
                            json!({ "peer": peer, "name": header.name }),
                            || {
                                format!(
                                    "the transfer of {} from {peer} was cut short: nothing saved",
                                    header.name
                                )
                            },
                        );
                    }
                    self.out.event(&peer, &event);
                    break;
                }
                _ => self.out.event(&peer, &event),
            }
        }
        if let Ok(mut connected) = self.connected.lock() {
            connected.retain(|s| *s != session);
        }
        let _ = self.app.destroy_ability_connection_session(session);
        Ok(())
    }

    fn report_saved(&self, peer: &str, header: &FileHeader, result: &Result<PathBuf, String>) {
        match result {
            Ok(path) => self.out.line(
                "file-saved",
                json!({ "peer": peer, "name": header.name, "path": path.display().to_string(), "length": header.length, "sha256": header.sha256 }),
                || format!("saved {} ({}, sha256 verified)", path.display(), size(header.length)),
            ),
            Err(why) => self.out.line(
                "file-refused",
                json!({ "peer": peer, "name": header.name, "why": why }),
                || format!("did not save {}: {why}", header.name),
            ),
        }
    }
}

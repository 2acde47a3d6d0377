//! `acm listen`: an app that accepts (or rejects) collaboration requests and prints every event;
//! with `--save-dir`, it saves the files `acm send` sends.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use acm::{
    AbilityConnectionManager, AcmError, CollaborateRequest, CollaborateResult, Event, SessionId,
};
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

use crate::commands::chat::not_sent;
use crate::common::{
    AppName, CLOSE_LIMIT, CliError, DEFAULT_APP, Interrupt, NetArgs, Out, TransportKind,
    ble_device, close_device, tcp_device,
};
use crate::meter::{Meter, size};
use crate::receive::{Claims, Inbound, PARTIAL_KEPT, sweep_partials};
use crate::security::Pairing;
use crate::transfer::FileMessage;

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
    /// Save the files sent with `acm send` in this directory. A file is written to a hidden
    /// partial file there as it arrives, and renamed to its name once its length and SHA-256
    /// match; a transfer cut short leaves its partial file, from which sending it again resumes.
    /// Partial files that nothing wrote to for 7 days are deleted.
    #[arg(long)]
    save_dir: Option<PathBuf>,
    /// Replace a file of the same name in --save-dir, instead of saving beside it as
    /// `NAME (1).EXT`.
    #[arg(long)]
    overwrite: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// The sessions connected now, to send typed lines to.
type Connected = Arc<Mutex<Vec<SessionId>>>;

/// The tasks serving sessions, and the word to stop that they all watch: when the command
/// ends, each says how its session ended (a file cut short) before the process goes.
#[derive(Clone)]
struct Serves {
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Serves {
    fn new() -> Self {
        Self {
            tasks: Arc::default(),
            stop: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Tells every task to stop, and waits for them (at most [`CLOSE_LIMIT`]).
    async fn stop(&self) {
        self.stop.send_replace(true);
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut tasks| tasks.drain(..).collect())
            .unwrap_or_default();
        let _ = tokio::time::timeout(CLOSE_LIMIT, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
    }
}

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
    let claims = Claims::default();
    if let Some(dir) = &args.save_dir {
        let removed = sweep_partials(dir, &claims, PARTIAL_KEPT, SystemTime::now());
        if removed > 0 {
            let days = PARTIAL_KEPT.as_secs() / (24 * 60 * 60);
            out.line(
                "partials-removed",
                json!({ "count": removed, "days": days }),
                || format!("deleted {removed} partial file(s) in {} that nothing wrote to for {days} days", dir.display()),
            );
        }
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
    let serves = Serves::new();
    register(args, &app, out, &connected, &serves, claims);
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
                        match app.send_message(session, &line).await {
                            Ok(()) => {}
                            Err(err @ AcmError::MessageTooLong { .. }) => {
                                not_sent(out, &err);
                                break;
                            }
                            Err(err) => out.line("error", json!({ "message": err.to_string() }), || format!("acm: {err}")),
                        }
                    }
                }
                _ => stdin_open = false,
            },
        }
    }
    // Each session's task reports a file cut short, and ends its progress line.
    serves.stop().await;
    let sessions = connected.lock().map(|s| s.clone()).unwrap_or_default();
    for session in sessions {
        let _ = app.disconnect(session);
    }
    close_device(&device).await;
    Ok(())
}

fn register(
    args: &ListenArgs,
    app: &AbilityConnectionManager,
    out: Out,
    connected: &Connected,
    serves: &Serves,
    claims: Claims,
) {
    let serves = serves.clone();
    let manager = app.clone();
    let context = args.app.context();
    let service = args.service.clone();
    let reject = args.reject.clone();
    let save_dir = args.save_dir.clone();
    let overwrite = args.overwrite;
    let max_chunk = args.net.accepted_data_size();
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
                overwrite,
                claims: claims.clone(),
                max_chunk,
                connected: connected.clone(),
                stop: serves.stop.subscribe(),
            };
            let context = context.clone();
            let task = tokio::spawn(async move {
                if let Err(err) = serving.serve(request, &context).await {
                    out.line("error", json!({ "message": err.to_string() }), || {
                        format!("acm: {err}")
                    });
                }
            });
            if let Ok(mut tasks) = serves.tasks.lock() {
                tasks.retain(|task| !task.is_finished());
                tasks.push(task);
            }
            CollaborateResult::Accept
        },
    );
}

/// What serving one session needs.
struct Serving {
    app: AbilityConnectionManager,
    out: Out,
    save_dir: Option<PathBuf>,
    overwrite: bool,
    claims: Claims,
    max_chunk: u64,
    connected: Connected,
    /// Becomes true when the command ends.
    stop: tokio::sync::watch::Receiver<bool>,
}

/// A file being received, and its meter.
type Receiving = Option<(Inbound, Meter)>;

impl Serving {
    async fn serve(
        mut self,
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
        let mut file: Receiving = None;
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = self.stop.wait_for(|stop| *stop) => None,
            };
            let Some(event) = event else {
                break;
            };
            match &event {
                Event::Message { msg, .. } => match FileMessage::parse(msg) {
                    Some(message) => match self.on_message(&peer, message, &mut file).await {
                        Ok(Some(reply)) => {
                            let _ = self.app.send_message(session, &reply).await;
                        }
                        Ok(None) => {}
                        Err(why) => self.refuse(&peer, session, &mut file, why).await,
                    },
                    None => self.out.event(&peer, &event),
                },
                Event::DataProgress { received, .. } => {
                    if let Some((inbound, meter)) = &mut file {
                        meter.update(inbound.have() + received);
                    }
                }
                Event::Data { data, .. } if file.is_some() => {
                    let Some((mut inbound, meter)) = file.take() else {
                        continue;
                    };
                    let data = data.clone();
                    let written = tokio::task::spawn_blocking(move || {
                        let written = inbound.write(&data);
                        (inbound, written)
                    })
                    .await;
                    match written {
                        Ok((inbound, Ok(()))) => {
                            file = Some((inbound, meter));
                            if file.as_ref().is_some_and(|(i, _)| i.v1_complete()) {
                                let reply = self.finish(&peer, &mut file, None).await;
                                let _ = self.app.send_message(session, &reply).await;
                            }
                        }
                        Ok((inbound, Err(why))) => {
                            file = Some((inbound, meter));
                            self.refuse(&peer, session, &mut file, why).await;
                        }
                        Err(_) => {
                            let why = "the write of a chunk failed".to_string();
                            self.refuse(&peer, session, &mut None, why).await;
                        }
                    }
                }
                Event::Disconnect { .. } => {
                    self.cut_short(&peer, &mut file);
                    self.out.event(&peer, &event);
                    break;
                }
                _ => self.out.event(&peer, &event),
            }
        }
        // The command ends, or the session's events did without a disconnect.
        self.cut_short(&peer, &mut file);
        if let Ok(mut connected) = self.connected.lock() {
            connected.retain(|s| *s != session);
        }
        let _ = self.app.destroy_ability_connection_session(session);
        Ok(())
    }

    /// A transfer under way that ends with its session: its progress line ends, and what is
    /// kept for a resume is said.
    fn cut_short(&self, peer: &str, file: &mut Receiving) {
        let Some((inbound, mut meter)) = file.take() else {
            return;
        };
        meter.abandon();
        let (name, have) = (inbound.header().name.clone(), inbound.have());
        let resumable = inbound.header().version != 1 && self.save_dir.is_some();
        inbound.abandon();
        let kept = if resumable { have } else { 0 };
        self.out.line(
            "file-lost",
            json!({ "peer": peer, "name": name, "kept": kept }),
            || {
                if resumable {
                    format!("the transfer of {name} from {peer} was cut short: {} kept, to resume when it is sent again", size(have))
                } else {
                    format!("the transfer of {name} from {peer} was cut short: nothing saved")
                }
            },
        );
    }

    /// Acts on a message of the file convention: returns the reply to send, or fails with why
    /// the file is refused.
    async fn on_message(
        &self,
        peer: &str,
        message: FileMessage,
        file: &mut Receiving,
    ) -> Result<Option<String>, String> {
        match message {
            FileMessage::Header(header) => {
                if let Some((inbound, _)) = file.take() {
                    inbound.abandon();
                }
                let Some(dir) = self.save_dir.clone() else {
                    return Err("this listener saves no files (it runs without --save-dir)".into());
                };
                self.out.line(
                    "file",
                    json!({ "peer": peer, "name": header.name, "length": header.length, "version": header.version }),
                    || format!("{peer} sends {} ({})", header.name, size(header.length)),
                );
                let claims = self.claims.clone();
                let opened = tokio::task::spawn_blocking(move || {
                    sweep_partials(&dir, &claims, PARTIAL_KEPT, SystemTime::now());
                    Inbound::open(header, Some(&dir), &claims)
                })
                .await
                .map_err(|_| "the partial file could not be read".to_string())??;
                let meter = Meter::new(
                    self.out,
                    "receiving",
                    &opened.header().name,
                    opened.header().length,
                );
                let reply = (opened.header().version != 1)
                    .then(|| opened.ready(self.max_chunk).to_message());
                *file = Some((opened, meter));
                Ok(reply)
            }
            FileMessage::Data { offset } => {
                let (inbound, meter) = file.as_mut().ok_or("acm-file-data before acm-file")?;
                let (held, name) = (inbound.have(), inbound.header().name.clone());
                inbound.start(offset)?;
                if offset > 0 {
                    *meter = Meter::new(self.out, "receiving", &name, inbound.header().length)
                        .resuming_at(offset);
                    self.out.line(
                        "file-resumed",
                        json!({ "peer": peer, "name": name, "offset": offset }),
                        || {
                            format!(
                                "resuming {name} at {} (sha256 of what is held matched)",
                                size(offset)
                            )
                        },
                    );
                } else if held > 0 {
                    self.out.line(
                        "file-restarted",
                        json!({ "peer": peer, "name": name, "dropped": held }),
                        || {
                            format!(
                                "{peer} starts {name} over: the {} held differ from its file",
                                size(held)
                            )
                        },
                    );
                }
                Ok(None)
            }
            FileMessage::End { sha256 } => {
                let Some((inbound, _)) = file.as_mut() else {
                    return Err("acm-file-end before acm-file".into());
                };
                if inbound.header().version == 1 {
                    return Err("acm-file-end in a version 1 transfer".into());
                }
                Ok(Some(self.finish(peer, file, Some(sha256)).await))
            }
            // The sender's side of the convention: not for a receiver.
            FileMessage::Ready { .. } | FileMessage::Result(_) => Ok(None),
        }
    }

    /// Ends the file being received: checks it and puts it in place. Returns the answer.
    async fn finish(&self, peer: &str, file: &mut Receiving, sha256: Option<String>) -> String {
        let Some((inbound, mut meter)) = file.take() else {
            return FileMessage::Result(Err("no file was announced".into())).to_message();
        };
        let (name, length) = (inbound.header().name.clone(), inbound.header().length);
        if inbound.have() == length {
            // Every byte is here (checked next): the meter ends at 100 %, once.
            meter.complete();
        }
        let overwrite = self.overwrite;
        let result =
            tokio::task::spawn_blocking(move || inbound.finish(sha256.as_deref(), overwrite))
                .await
                .unwrap_or_else(|_| Err(format!("{name} could not be saved")));
        meter.abandon();
        match &result {
            Ok(saved) => {
                let path = self
                    .save_dir
                    .as_deref()
                    .map(|dir| dir.join(saved).display().to_string())
                    .unwrap_or_default();
                self.out.line(
                    "file-saved",
                    json!({ "peer": peer, "name": name, "path": path, "length": length }),
                    || format!("saved {path} ({}, sha256 verified)", size(length)),
                );
            }
            Err(why) => self.out.line(
                "file-refused",
                json!({ "peer": peer, "name": name, "why": why }),
                || format!("did not save {name}: {why}"),
            ),
        }
        FileMessage::Result(result).to_message()
    }

    /// Refuses the file being received (or announced), keeping nothing of it, and tells the
    /// sender why.
    async fn refuse(&self, peer: &str, session: SessionId, file: &mut Receiving, why: String) {
        let name = match file.take() {
            Some((inbound, mut meter)) => {
                meter.abandon();
                let name = inbound.header().name.clone();
                inbound.discard();
                name
            }
            None => String::new(),
        };
        self.out.line(
            "file-refused",
            json!({ "peer": peer, "name": name, "why": why }),
            || format!("refused a file from {peer}: {why}"),
        );
        let answer = FileMessage::Result(Err(why)).to_message();
        let _ = self.app.send_message(session, &answer).await;
    }
}

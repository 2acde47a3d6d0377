//! `acm chat`: opens a session to an app on another device; typed lines go out as messages and
//! the peer's messages are printed. Ctrl-C or the end of input disconnects.

use acm::{
    AbilityConnectionManager, AcmError, ConnectOptions, Device, Event, EventStream, SessionId,
};
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

use crate::commands::mock::{DEMO_PEER, Demo, demo_network};
use crate::common::{
    AppName, CliError, DEFAULT_APP, Interrupt, NetArgs, Out, TransportKind, ble_device, ble_target,
    close_device, probe, target, tcp_address, tcp_device,
};
use crate::security::Pairing;

/// How to reach the peer app: shared by `acm chat` and `acm send`.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    #[command(flatten)]
    pub net: NetArgs,
    /// The peer device: its id (over Bluetooth LE, found by scanning), or ID@tcp://HOST:PORT
    /// (default with --transport mock: the demo peer).
    #[arg(long)]
    pub to: Option<String>,
    /// The service to open.
    #[arg(long)]
    pub service: String,
    /// This app, as BUNDLE/MODULE/ABILITY.
    #[arg(long = "as", default_value = DEFAULT_APP, value_name = "BUNDLE/MODULE/ABILITY")]
    pub app: AppName,
    /// The peer's app, as BUNDLE/MODULE/ABILITY (default: the same as this app's).
    #[arg(long = "peer-app", value_name = "BUNDLE/MODULE/ABILITY")]
    pub peer_app: Option<AppName>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// The options of `acm chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    #[command(flatten)]
    peer: PeerArgs,
}

/// A connected session and what it needs to stay up.
pub struct Open {
    /// This device.
    pub device: Device,
    /// This app.
    pub app: AbilityConnectionManager,
    /// The session.
    pub session: SessionId,
    /// Its events, progress included.
    pub events: EventStream,
    /// The peer device's id.
    pub peer: String,
    /// The mock demo, when there is one.
    pub demo: Option<Demo>,
}

impl Open {
    /// Disconnects (the peer sees PEER_APP_CLOSE_COLLABORATION) and closes the device.
    pub async fn close(self) {
        let _ = self.app.disconnect(self.session);
        close_device(&self.device).await;
        drop(self.demo);
    }
}

/// Connects to the peer app.
pub async fn open(args: &PeerArgs, out: Out, need_send_data: bool) -> Result<Open, CliError> {
    let to = || {
        args.to
            .as_deref()
            .ok_or_else(|| CliError::cannot_run("--to DEVICE is needed"))
    };
    let own_id = format!("acm-{}", std::process::id());
    let (device, demo, peer) = match args.net.transport {
        TransportKind::Tcp => {
            let text = to()?;
            if text.starts_with("tcp://") {
                return Err(no_device_id(text).await);
            }
            let (peer, address) = target(text)?;
            if address.is_none() && !args.net.names_peer(&peer) {
                return Err(CliError::cannot_run(format!(
                    "--to {text} gives no address: over TCP write --to {text}@tcp://HOST:PORT (or add --peer {text}=tcp://HOST:PORT)"
                )));
            }
            let extra = address.map(|a| (peer.clone(), a));
            (tcp_device(&args.net, &own_id, extra).await?.0, None, peer)
        }
        TransportKind::Ble => {
            let peer = ble_target(to()?)?;
            (ble_device(&args.net, &own_id, false).await?, None, peer)
        }
        TransportKind::Mock => {
            let (demo, device) = demo_network("acm-mock")?;
            let peer = crate::common::device_id(args.to.as_deref().unwrap_or(DEMO_PEER))?;
            (device, Some(demo), peer)
        }
    };
    let context = args.app.context();
    let app = device.manager(&context);
    let peer_app = args.peer_app.as_ref().unwrap_or(&args.app);
    let options = ConnectOptions {
        need_send_data: need_send_data.then_some(true),
        ..ConnectOptions::default()
    };
    let session = app.create_ability_connection_session(
        &args.service,
        &context,
        peer_app.on(&peer),
        options,
    )?;
    let events = app.events_with_progress(session)?;
    let mut pairing = Pairing::new(&device, &args.net.security, out);
    let result = pairing.during(app.connect(session)).await?;
    if !result.is_connected {
        device.shutdown();
        let code = result
            .error_code
            .map_or("SYSTEM_INTERNAL_ERROR", |c| c.name());
        let reason = result.reason.unwrap_or_default();
        return Err(CliError::failed(format!(
            "cannot connect to {peer}: {code}{}",
            if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            }
        )));
    }
    let peer = peer.to_string();
    out.line(
        "connected",
        json!({ "peer": peer, "session": session.get(), "service": args.service }),
        || {
            // `acm send` leaves by itself once the file is sent.
            let leave = if need_send_data {
                ""
            } else {
                " (Ctrl-C or end of input to leave)"
            };
            format!("connected to {peer}, service {}{leave}", args.service)
        },
    );
    Ok(Open {
        device,
        app,
        session,
        events,
        peer,
        demo,
    })
}

/// `--to tcp://HOST:PORT` has no device id: says how to write it, with the id of the device
/// that answers there when one does.
async fn no_device_id(text: &str) -> CliError {
    let found = match tcp_address(text) {
        Ok(address) => probe(address).await,
        Err(why) => return CliError::cannot_run(why),
    };
    CliError::cannot_run(match found {
        Ok(id) => format!(
            "--to {text} gives no device id: device {id} answers there, so write --to {id}@{text}"
        ),
        Err(why) => format!("--to {text} gives no device id: write --to ID@{text}, though {why}"),
    })
}

/// Runs `acm chat`.
pub async fn run(args: &ChatArgs) -> Result<(), CliError> {
    let mut interrupt = Interrupt::watch();
    let out = Out {
        json: args.peer.json,
    };
    let mut open = open(&args.peer, out, false).await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut failure = None;
    let ended = loop {
        tokio::select! {
            () = interrupt.wait() => break None,
            line = lines.next_line() => match line {
                Ok(Some(line)) => match open.app.send_message(open.session, &line).await {
                    Ok(()) => {}
                    Err(err @ AcmError::MessageTooLong { .. }) => not_sent(out, &err),
                    Err(err) => {
                        // What was sent before leaves before the process does.
                        failure = Some(CliError::from(err));
                        break None;
                    }
                },
                _ => break None,
            },
            event = open.events.next() => match event {
                Some(Event::Connect { .. } | Event::DataProgress { .. }) => {}
                Some(event @ Event::Disconnect { .. }) => {
                    out.event(&open.peer, &event);
                    break Some(event);
                }
                Some(event) => out.event(&open.peer, &event),
                None => break None,
            },
        }
    };
    if ended.is_none() {
        if failure.is_none() {
            out.line("left", json!({ "peer": open.peer }), || {
                "disconnecting".into()
            });
        }
        open.close().await;
    } else {
        open.device.shutdown();
    }
    failure.map_or(Ok(()), Err)
}

/// Says that a typed line was too long to go as one message, and the session goes on: the
/// line is not sent, nothing else is lost.
pub fn not_sent(out: Out, err: &AcmError) {
    let AcmError::MessageTooLong { len, max } = err else {
        return;
    };
    out.line("not-sent", json!({ "bytes": len, "max": max }), || {
        format!("line not sent: {len} bytes, at most {max}")
    });
}

//! `acm send`: sends a file through `send_data` with a progress meter, following the
//! convention of [`crate::transfer`], and waits for the receiver's verdict.

use std::path::PathBuf;
use std::time::Duration;

use acm::Event;
use bytes::Bytes;
use serde_json::json;

use crate::commands::chat::{PeerArgs, open};
use crate::common::{CliError, Out};
use crate::transfer::{FileHeader, Meter, parse_result, size};

/// How long to wait for the receiver's verdict once every byte has left.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(120);

/// The options of `acm send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The file to send.
    file: PathBuf,
    #[command(flatten)]
    peer: PeerArgs,
}

/// Runs `acm send`.
pub async fn run(args: &SendArgs) -> Result<(), CliError> {
    let out = Out {
        json: args.peer.json,
    };
    let bytes = std::fs::read(&args.file)
        .map_err(|e| CliError::cannot_run(format!("cannot read {}: {e}", args.file.display())))?;
    let name = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CliError::cannot_run(format!("{} has no usable name", args.file.display())))?
        .to_string();
    let header = FileHeader::of(&name, &bytes);
    let mut open = open(&args.peer, out, true).await?;
    open.app
        .send_message(open.session, &header.to_message())
        .await?;
    out.line(
        "file",
        json!({ "name": name, "length": header.length, "sha256": header.sha256 }),
        || {
            format!(
                "sending {name} ({}, sha256 {})",
                size(header.length),
                header.sha256
            )
        },
    );
    let mut meter = Meter::new(out, "sending", &name, header.length);
    let sent = open
        .app
        .send_data_with_progress(open.session, Bytes::from(bytes), |p| meter.update(p.sent))
        .await;
    if let Err(err) = sent {
        meter.abandon();
        open.device.shutdown();
        return Err(CliError::failed(format!(
            "the transfer of {name} was cut short ({err}): the receiver keeps nothing"
        )));
    }
    let verdict = tokio::time::timeout(VERDICT_TIMEOUT, async {
        while let Some(event) = open.events.next().await {
            match event {
                Event::Message { msg, .. } => {
                    if let Some(verdict) = parse_result(&msg) {
                        return Some(verdict);
                    }
                    out.event(
                        &open.peer,
                        &Event::Message {
                            session_id: open.session,
                            msg,
                        },
                    );
                }
                Event::Disconnect { .. } => return None,
                _ => {}
            }
        }
        None
    })
    .await;
    let peer = open.peer.clone();
    open.close().await;
    match verdict {
        Ok(Some(Ok(()))) => {
            out.line("file-saved", json!({ "name": name, "peer": peer }), || {
                format!("{peer} saved {name} (length and sha256 verified)")
            });
            Ok(())
        }
        Ok(Some(Err(why))) => Err(CliError::failed(format!(
            "{peer} did not save {name}: {why}"
        ))),
        Ok(None) => Err(CliError::failed(format!(
            "the session with {peer} ended before it confirmed {name}"
        ))),
        Err(_) => Err(CliError::failed(format!(
            "{peer} did not confirm {name} in time"
        ))),
    }
}

//! `acm send`: sends a file as a sequence of `send_data` chunks with a progress meter, following
//! version 2 of the convention of [`crate::transfer`]: the file is read and hashed on a thread
//! of its own while the chunks before go out, so that memory stays bounded whatever its size,
//! and a transfer cut short resumes from what the receiver holds.

use std::cell::Cell;
use std::fs::File;
use std::future::Future as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use acm::{AcmError, Event};
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::commands::chat::{Open, PeerArgs, open};
use crate::common::{CliError, Interrupt, Out};
use crate::meter::{Meter, size};
use crate::transfer::{
    CACHE_PIECE, DEFAULT_CHUNK, FileHeader, FileMessage, hash_prefix, hex, is_plain_name,
};

/// How long to wait for the receiver's answer to the file's announcement.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for the receiver's verdict once every byte has left.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(120);

/// How many chunks the reading thread may have ready ahead of the one being sent.
const READ_AHEAD: usize = 2;

/// The options of `acm send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The file to send.
    file: PathBuf,
    #[command(flatten)]
    peer: PeerArgs,
}

/// What the reading thread hands over, in this order: where the chunks start, the chunks, the
/// whole file's SHA-256.
enum Piece {
    Start(u64),
    Chunk(Bytes),
    End(String),
    Failed(String),
}

/// Runs `acm send`.
pub async fn run(args: &SendArgs) -> Result<(), CliError> {
    let mut interrupt = Interrupt::watch();
    let out = Out {
        json: args.peer.json,
    };
    let path = &args.file;
    let cannot_read =
        |e: std::io::Error| CliError::cannot_run(format!("cannot read {}: {e}", path.display()));
    let file = File::open(path).map_err(cannot_read)?;
    let metadata = file.metadata().map_err(cannot_read)?;
    if !metadata.is_file() {
        return Err(CliError::cannot_run(format!(
            "{} is not a file",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| is_plain_name(n))
        .ok_or_else(|| CliError::cannot_run(format!("{} has no usable name", path.display())))?
        .to_string();
    let header = FileHeader::new(&name, metadata.len());
    let mut open = open(&args.peer, out, true).await?;
    let sent = Cell::new(0);
    let outcome = tokio::select! {
        outcome = transfer(&mut open, out, file, &header, &sent) => outcome,
        () = interrupt.wait() => Err(Failure::Interrupted),
    };
    let peer = open.peer.clone();
    let length = header.length;
    let held = || {
        format!(
            "{} of {} sent; `acm send` of the same file again resumes from what {peer} kept",
            size(sent.get()),
            size(length)
        )
    };
    let result = match outcome {
        Ok(saved) => {
            out.line(
                "file-saved",
                json!({ "name": name, "peer": peer, "saved_as": saved }),
                || {
                    if saved == name || saved.is_empty() {
                        format!("{peer} saved {name} (length and sha256 verified)")
                    } else {
                        format!("{peer} saved {name} as {saved} (length and sha256 verified)")
                    }
                },
            );
            Ok(())
        }
        Err(Failure::Refused(why)) => Err(CliError::failed(format!(
            "{peer} did not save {name}: {why}"
        ))),
        Err(Failure::Unanswered) => Err(CliError::failed(format!(
            "{peer} did not answer the announcement of {name} in {} s: is it `acm listen --save-dir` of a version that speaks version 2 of the file convention?",
            READY_TIMEOUT.as_secs()
        ))),
        Err(Failure::Lost(why)) => Err(CliError::failed(format!(
            "the transfer of {name} was cut short ({why}): {}",
            held()
        ))),
        Err(Failure::Interrupted) => Err(CliError::failed(format!("interrupted: {}", held()))),
        Err(Failure::Unconfirmed) => Err(CliError::failed(format!(
            "{peer} did not confirm {name} in time"
        ))),
        Err(Failure::Read(why)) => Err(CliError::failed(format!(
            "cannot read {}: {why}",
            path.display()
        ))),
    };
    open.close().await;
    result
}

/// Why a transfer did not end with the file saved.
enum Failure {
    /// The receiver said no, and why.
    Refused(String),
    /// The receiver did not answer the announcement.
    Unanswered,
    /// The session or link ended midway.
    Lost(String),
    /// Ctrl-C.
    Interrupted,
    /// No verdict came after the last byte.
    Unconfirmed,
    /// The file could not be read.
    Read(String),
}

/// Sends `file`: the announcement, the chunks from where the receiver is, the end. Returns the
/// name the receiver saved it under. `sent` follows how far the receiver has got.
async fn transfer(
    open: &mut Open,
    out: Out,
    file: File,
    header: &FileHeader,
    sent: &Cell<u64>,
) -> Result<String, Failure> {
    message(open, &FileMessage::Header(header.clone())).await?;
    let ready = tokio::time::timeout(
        READY_TIMEOUT,
        answer(open, out, |m| matches!(m, FileMessage::Ready { .. })),
    )
    .await
    .map_err(|_| Failure::Unanswered)??;
    let FileMessage::Ready {
        offset,
        sha256,
        max_chunk,
    } = ready
    else {
        return Err(Failure::Unanswered);
    };
    let resume = (offset > 0 && offset <= header.length).then_some((offset, sha256));
    let chunk = max_chunk.clamp(1, DEFAULT_CHUNK);
    let (tx, mut pieces) = mpsc::channel(READ_AHEAD);
    let length = header.length;
    tokio::task::spawn_blocking(move || read(file, length, resume, chunk, &tx));
    let mut meter = Meter::new(out, "sending", &header.name, header.length);
    let mut limit = usize::try_from(chunk).unwrap_or(usize::MAX);
    while let Some(piece) = pieces.recv().await {
        match piece {
            Piece::Start(start) => {
                sent.set(start);
                if start > 0 {
                    meter = meter.resuming_at(start);
                    out.line(
                        "resuming",
                        json!({ "name": header.name, "offset": start }),
                        || {
                            format!(
                                "resuming at {} of {}: {} already holds them (sha256 checked)",
                                size(start),
                                size(length),
                                open.peer
                            )
                        },
                    );
                }
                message(open, &FileMessage::Data { offset: start }).await?;
                out.line(
                    "file",
                    json!({ "name": header.name, "length": length, "offset": start }),
                    || format!("sending {} ({})", header.name, size(length)),
                );
                meter.update(start);
            }
            Piece::Chunk(bytes) => {
                if let Some(refused) = refusal(open, out) {
                    meter.abandon();
                    return Err(refused);
                }
                let mut at = 0;
                while at < bytes.len() {
                    let part = bytes.slice(at..bytes.len().min(at + limit));
                    let base = sent.get();
                    let result = open
                        .app
                        .send_data_with_progress(open.session, part.clone(), |p| {
                            meter.update(base + p.sent);
                        })
                        .await;
                    match result {
                        Ok(()) => {
                            at += part.len();
                            sent.set(base + part.len() as u64);
                        }
                        // The receiver takes less than it said: smaller parts.
                        Err(AcmError::DataTooLarge { max, .. })
                            if max > 0 && (max as usize) < part.len() =>
                        {
                            limit = usize::try_from(max).unwrap_or(usize::MAX);
                        }
                        Err(err) => {
                            meter.abandon();
                            return Err(Failure::Lost(lost(&open.peer, &err)));
                        }
                    }
                }
            }
            Piece::End(sha256) => {
                // Every chunk has been handed to the link: the meter ends at 100 %, once.
                meter.complete();
                message(open, &FileMessage::End { sha256 }).await?;
                let verdict = tokio::time::timeout(
                    VERDICT_TIMEOUT,
                    answer(open, out, |m| matches!(m, FileMessage::Result(_))),
                )
                .await
                .map_err(|_| Failure::Unconfirmed)??;
                return match verdict {
                    FileMessage::Result(Ok(saved)) => Ok(saved),
                    _ => Err(Failure::Unconfirmed),
                };
            }
            Piece::Failed(why) => {
                meter.abandon();
                return Err(Failure::Read(why));
            }
        }
    }
    meter.abandon();
    Err(Failure::Read("the reading thread stopped".into()))
}

/// Sends one message of the convention.
async fn message(open: &Open, message: &FileMessage) -> Result<(), Failure> {
    open.app
        .send_message(open.session, &message.to_message())
        .await
        .map_err(|err| Failure::Lost(lost(&open.peer, &err)))
}

/// Why a session broke, for people: the peer left (and why), or the API's error.
fn lost(peer: &str, err: &AcmError) -> String {
    match err {
        AcmError::SessionEnded { reason, .. } => format!("{peer} left: {}", reason.name()),
        AcmError::UnknownSession(_) | AcmError::NotConnected(_) => {
            format!("the session with {peer} ended")
        }
        other => other.to_string(),
    }
}

/// Waits for the receiver's message that `wanted` picks, printing the peer's other messages;
/// a refusal ends the wait.
async fn answer(
    open: &mut Open,
    out: Out,
    wanted: impl Fn(&FileMessage) -> bool,
) -> Result<FileMessage, Failure> {
    while let Some(event) = open.events.next().await {
        if let Some(outcome) = sort(open, out, event, &wanted) {
            return outcome;
        }
    }
    Err(Failure::Lost("the session ended".into()))
}

/// A refusal (or the end of the session) that came while the chunks were going out, if one
/// did; the peer's other messages are printed.
fn refusal(open: &mut Open, out: Out) -> Option<Failure> {
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    loop {
        let polled = std::pin::pin!(open.events.next()).poll(&mut context);
        let std::task::Poll::Ready(event) = polled else {
            return None;
        };
        if let Some(Err(failure)) = sort(open, out, event?, &|_| false) {
            return Some(failure);
        }
    }
}

/// What an event from the receiver means to the sender: the message of the convention that
/// `wanted` picks, a refusal, the session's end, or nothing (the peer's other messages are
/// printed).
fn sort(
    open: &Open,
    out: Out,
    event: Event,
    wanted: &impl Fn(&FileMessage) -> bool,
) -> Option<Result<FileMessage, Failure>> {
    match event {
        Event::Message { msg, session_id } => match FileMessage::parse(&msg) {
            Some(FileMessage::Result(Err(why))) => Some(Err(Failure::Refused(why))),
            Some(message) if wanted(&message) => Some(Ok(message)),
            _ => {
                out.event(&open.peer, &Event::Message { session_id, msg });
                None
            }
        },
        Event::Disconnect { reason, .. } => Some(Err(Failure::Lost(format!(
            "{} left: {}",
            open.peer,
            reason.name()
        )))),
        _ => None,
    }
}

/// The reading thread: checks the receiver's `resume` (what it holds and its SHA-256) against
/// the file, then reads and hashes the rest in chunks of `chunk` bytes, handing each over as
/// soon as it is read.
fn read(
    mut file: File,
    length: u64,
    resume: Option<(u64, String)>,
    chunk: u64,
    tx: &mpsc::Sender<Piece>,
) {
    let mut hasher = Sha256::new();
    let mut start = 0;
    if let Some((offset, sha256)) = resume {
        let mut prefix = Sha256::new();
        if hash_prefix(&mut file, offset, &mut prefix).is_ok()
            && hex(&prefix.clone().finalize()) == sha256
        {
            hasher = prefix;
            start = offset;
        }
    }
    let mut positioned = std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start));
    if let Err(err) = positioned.as_mut() {
        let _ = tx.blocking_send(Piece::Failed(err.to_string()));
        return;
    }
    if tx.blocking_send(Piece::Start(start)).is_err() {
        return;
    }
    let mut left = length - start;
    while left > 0 {
        let want = usize::try_from(left.min(chunk)).unwrap_or(usize::MAX);
        let mut buffer = vec![0u8; want];
        // Piece by piece, each hashed while it is still in the processor's cache.
        for piece in buffer.chunks_mut(CACHE_PIECE) {
            if let Err(err) = file.read_exact(piece) {
                let why = if err.kind() == std::io::ErrorKind::UnexpectedEof {
                    "it became shorter while being sent".to_string()
                } else {
                    err.to_string()
                };
                let _ = tx.blocking_send(Piece::Failed(why));
                return;
            }
            hasher.update(&*piece);
        }
        left -= want as u64;
        if tx.blocking_send(Piece::Chunk(Bytes::from(buffer))).is_err() {
            return;
        }
    }
    let _ = tx.blocking_send(Piece::End(hex(&hasher.finalize())));
}

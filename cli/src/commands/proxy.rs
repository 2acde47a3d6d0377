//! `acm proxy`: sits between two implementations over the TCP binding, forwards every byte as it
//! comes, and prints each frame decoded (`acm_wire::inspect`), one per line.

use std::fs::File;
use std::io::{BufWriter, Read as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use acm::secure::keylog::{LinkKeys, RecordOpener};
use acm::wire::inspect::{Direction, Inspector, Record, RecordKeys, RecordOpen};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::common::{CliError, Interrupt, Out, tcp_address};
use crate::pcap::{Flow, PcapWriter};

/// The options of `acm proxy`.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Where to listen: tcp://HOST:PORT (port 0 picks a free one; the address is printed).
    #[arg(long, value_name = "tcp://HOST:PORT")]
    listen: String,
    /// Where to forward each connection: tcp://HOST:PORT.
    #[arg(long, value_name = "tcp://HOST:PORT")]
    to: String,
    /// One JSON object per line: each frame with its header fields, its decoded fields (values
    /// written as in the text lines) and the rules it breaks.
    #[arg(long)]
    json: bool,
    /// Write every connection to FILE as pcapng, one packet per frame, for Wireshark or tshark
    /// with the dissector of tools/wireshark/.
    #[arg(long, value_name = "FILE")]
    pcap: Option<String>,
    /// Forward only what breaks no rule: a unit that breaks one is shown, not forwarded, and
    /// ends its connection.
    #[arg(long)]
    strict: bool,
    /// Open the records of secure links with the keys in FILE, a key log (SPEC section 17.12)
    /// that implementations write when ACM_KEYLOGFILE names it, and show the frames inside.
    /// The file is read again when a link's keys are not in it yet.
    #[arg(long, value_name = "FILE")]
    keylog: Option<PathBuf>,
}

/// The largest key log read (a line is 209 bytes: about 300 000 links).
const MAX_KEYLOG: u64 = 64 << 20;

/// A key log file, read when an inspector asks for a link's keys.
struct KeyLogFile(PathBuf);

impl RecordKeys for KeyLogFile {
    fn opener(
        &self,
        dialer_ephemeral: &[u8; 32],
        direction: Direction,
    ) -> Option<Box<dyn RecordOpen>> {
        let mut text = String::new();
        File::open(&self.0)
            .ok()?
            .take(MAX_KEYLOG)
            .read_to_string(&mut text)
            .ok()?;
        let keys = LinkKeys::parse_all(&text)
            .into_iter()
            .find(|keys| &keys.dialer_ephemeral == dialer_ephemeral)?;
        let key = match direction {
            Direction::Dialer => keys.dialer_key,
            Direction::Acceptor => keys.acceptor_key,
        };
        Some(Box::new(Opener(RecordOpener::new(&key)?)))
    }
}

impl KeyLogFile {
    /// Whether the key log has the keys of the link `dialer_ephemeral` names.
    fn has(&self, dialer_ephemeral: &[u8; 32]) -> bool {
        let mut text = String::new();
        let read = File::open(&self.0).and_then(|f| f.take(MAX_KEYLOG).read_to_string(&mut text));
        read.is_ok()
            && LinkKeys::parse_all(&text)
                .iter()
                .any(|keys| &keys.dialer_ephemeral == dialer_ephemeral)
    }
}

/// How long a direction's first records wait for their link's line in the key log: the peers
/// write it when their handshake ends, which can be just after the proxy has forwarded the
/// first record.
const KEYLOG_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// One direction's records, opened with a key log's key.
struct Opener(RecordOpener);

impl RecordOpen for Opener {
    fn open(&mut self, number: u64, body: &[u8]) -> Option<Vec<u8>> {
        self.0.open_at(number, body)
    }
}

/// What every connection writes to: the capture and the clock lines are stamped with.
struct Shared {
    out: Out,
    start: Instant,
    strict: bool,
    pcap: Option<Mutex<PcapWriter<BufWriter<File>>>>,
    keys: Option<Arc<dyn RecordKeys>>,
    keylog: Option<Arc<KeyLogFile>>,
}

/// One connection being carried.
struct Connection {
    number: u64,
    inspector: Mutex<Inspector>,
    flow: Option<Mutex<Flow>>,
}

/// Runs `acm proxy` until Ctrl-C.
pub async fn run(args: &ProxyArgs) -> Result<(), CliError> {
    let listen = tcp_address(&args.listen).map_err(CliError::cannot_run)?;
    let to = tcp_address(&args.to).map_err(CliError::cannot_run)?;
    let pcap = match &args.pcap {
        Some(path) => {
            let file = File::create(path)
                .map_err(|e| CliError::cannot_run(format!("cannot write {path}: {e}")))?;
            let writer = PcapWriter::new(BufWriter::new(file))
                .map_err(|e| CliError::cannot_run(format!("cannot write {path}: {e}")))?;
            Some(Mutex::new(writer))
        }
        None => None,
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::cannot_run(format!("cannot listen on {listen}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::cannot_run(e.to_string()))?;
    let keylog = args.keylog.clone().map(|path| Arc::new(KeyLogFile(path)));
    let shared = Arc::new(Shared {
        out: Out { json: args.json },
        start: Instant::now(),
        strict: args.strict,
        pcap,
        keys: keylog.clone().map(|k| k as Arc<dyn RecordKeys>),
        keylog,
    });
    shared.out.line(
        "listening",
        json!({ "listen": format!("tcp://{local}"), "to": format!("tcp://{to}") }),
        || format!("acm proxy: listening on tcp://{local}, forwarding to tcp://{to}"),
    );
    let mut interrupt = Interrupt::watch();
    let mut number = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = interrupt.wait() => return Ok(()),
        };
        let Ok((client, client_addr)) = accepted else {
            continue;
        };
        number = number.saturating_add(1);
        tokio::spawn(carry(Arc::clone(&shared), number, client, client_addr, to));
    }
}

impl Shared {
    fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn event(&self, connection: u64, kind: &str, fields: Value, text: String) {
        let time = self.seconds();
        let mut object = json!({ "time": time, "conn": connection });
        if let (Some(object), Value::Object(fields)) = (object.as_object_mut(), fields) {
            object.extend(fields);
        }
        self.out
            .line(kind, object, || format!("{time:.6} #{connection} {text}"));
    }

    fn record(&self, connection: &Connection, record: &Record) {
        let time = self.seconds();
        let header = record.header;
        let fields: Vec<Value> = record
            .fields
            .iter()
            .map(|(name, value)| json!([name, value]))
            .collect();
        let problems: Vec<Value> = record
            .problems
            .iter()
            .map(|p| json!({ "rule": p.rule, "text": p.text }))
            .collect();
        let object = json!({
            "time": time,
            "conn": connection.number,
            "dir": record.direction.arrow(),
            "offset": record.offset,
            "size": record.bytes.len(),
            "name": record.name,
            "version": header.map(|h| h.version),
            "type": header.map(|h| h.frame_type),
            "flags": header.map(|h| h.flags),
            "flag_names": record.flag_names(),
            "length": header.map(|h| h.length),
            "channel": header.map(|h| h.channel),
            "fields": fields,
            "problems": problems,
        });
        // The capture is locked while the line is printed, so that lines and packets come in
        // the same order.
        let mut pcap = self
            .pcap
            .as_ref()
            .map(|pcap| pcap.lock().unwrap_or_else(PoisonError::into_inner));
        self.out.line("frame", object, || {
            format!("{time:.6} #{} {}", connection.number, record.line())
        });
        if let (Some(pcap), Some(flow)) = (&mut pcap, &connection.flow) {
            let mut flow = flow.lock().unwrap_or_else(PoisonError::into_inner);
            let from_client = record.direction == Direction::Dialer;
            // A capture that cannot be written does not stop the forwarding.
            let _ = flow.data(pcap, from_client, &record.bytes, SystemTime::now());
        }
    }
}

/// Carries one connection: dials the target, then pumps both directions until both end.
async fn carry(
    shared: Arc<Shared>,
    number: u64,
    client: TcpStream,
    client_addr: SocketAddr,
    to: SocketAddr,
) {
    let server = match TcpStream::connect(to).await {
        Ok(server) => server,
        Err(err) => {
            shared.event(
                number,
                "unreachable",
                json!({ "to": format!("tcp://{to}"), "error": err.to_string() }),
                format!("tcp://{to} is unreachable: {err}"),
            );
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    shared.event(
        number,
        "connected",
        json!({ "client": client_addr.to_string(), "server": to.to_string() }),
        format!("connected {client_addr} -> {to}"),
    );
    let flow = shared.pcap.as_ref().and_then(|pcap| {
        let mut pcap = pcap.lock().unwrap_or_else(PoisonError::into_inner);
        Flow::open(&mut pcap, client_addr, to, SystemTime::now())
            .ok()
            .map(Mutex::new)
    });
    let connection = Arc::new(Connection {
        number,
        inspector: Mutex::new(match &shared.keys {
            Some(keys) => Inspector::with_keys(Arc::clone(keys)),
            None => Inspector::new(),
        }),
        flow,
    });
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (stop, stopped) = watch::channel(false);
    let upstream = pump(
        &shared,
        &connection,
        Direction::Dialer,
        client_read,
        server_write,
        &stop,
        stopped.clone(),
    );
    let downstream = pump(
        &shared,
        &connection,
        Direction::Acceptor,
        server_read,
        client_write,
        &stop,
        stopped,
    );
    tokio::join!(upstream, downstream);
    shared.event(number, "closed", json!({}), "closed".into());
}

/// Forwards what `direction`'s sender writes to the other side, shows each unit, and when the
/// sender ends its direction, ends it on the other side too.
async fn pump(
    shared: &Shared,
    connection: &Connection,
    direction: Direction,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    stop: &watch::Sender<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarding = true;
    loop {
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let bytes = buf.get(..n).unwrap_or_default();
        if forwarding && !shared.strict && to.write_all(bytes).await.is_err() {
            // The other side is gone: keep reading, so that what this side says is still shown.
            forwarding = false;
        }
        wait_for_keys(shared, connection, direction, bytes).await;
        let records = connection
            .inspector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(direction, bytes);
        for record in records {
            shared.record(connection, &record);
            if shared.strict {
                if !record.problems.is_empty() {
                    shared.event(
                        connection.number,
                        "refused",
                        json!({ "dir": direction.arrow(), "offset": record.offset }),
                        format!(
                            "{} not forwarded (--strict): the connection ends",
                            direction.arrow()
                        ),
                    );
                    let _ = stop.send(true);
                    let _ = to.shutdown().await;
                    return;
                }
                if forwarding && to.write_all(&record.bytes).await.is_err() {
                    forwarding = false;
                }
            }
        }
    }
    let tail = connection
        .inspector
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .finish(direction);
    if let Some(record) = tail {
        shared.record(connection, &record);
    }
    if let (Some(pcap), Some(flow)) = (&shared.pcap, &connection.flow) {
        let mut pcap = pcap.lock().unwrap_or_else(PoisonError::into_inner);
        let mut flow = flow.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = flow.fin(&mut pcap, direction == Direction::Dialer, SystemTime::now());
    }
    shared.event(
        connection.number,
        "end",
        json!({ "dir": direction.arrow() }),
        format!("{} ended", direction.arrow()),
    );
    let _ = to.shutdown().await;
}

/// Before a direction's first record is read, gives the peers up to [`KEYLOG_WAIT`] to write
/// the link's keys to the key log (they do when their handshake ends).
async fn wait_for_keys(
    shared: &Shared,
    connection: &Connection,
    direction: Direction,
    bytes: &[u8],
) {
    let Some(keylog) = &shared.keylog else {
        return;
    };
    let record_header = [0xAC, 0x4D, 0x01, 0x7F];
    if !bytes.windows(4).any(|w| w == record_header) {
        return;
    }
    let awaited = connection
        .inspector
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .awaiting_keys(direction);
    let Some(id) = awaited else {
        return;
    };
    let deadline = tokio::time::Instant::now() + KEYLOG_WAIT;
    while !keylog.has(&id) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

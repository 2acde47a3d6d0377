//! `acm conformance --target ... --pcap DIR`: the suite reaches the target through a recorder
//! that forwards every byte and keeps what each connection carried, so that a failing case's
//! connections can be written as a capture (`DIR/CASE.pcapng`, one packet per frame, as
//! `acm proxy --pcap` writes them).
//!
//! What a case's connections carry is kept until the case ends, at most [`MAX_KEPT`] bytes a
//! case; beyond that the bytes are still forwarded but not kept.

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use acm::wire::inspect::{Direction, Inspector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::pcap::{Flow, PcapWriter};

/// The most bytes kept for one case (its connections together).
pub const MAX_KEPT: usize = 32 << 20;

/// What went by on one connection, in order.
enum Event {
    Data(SystemTime, Direction, Vec<u8>),
    End(SystemTime, Direction),
}

struct Connection {
    client: SocketAddr,
    server: SocketAddr,
    start: SystemTime,
    events: Vec<Event>,
}

/// The connections since the last case ended, and how many bytes they hold.
#[derive(Default)]
struct Kept {
    connections: Vec<Arc<Mutex<Connection>>>,
    bytes: usize,
}

/// A recorder between the suite and its target.
pub struct Recorder {
    kept: Mutex<Kept>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    /// Listens on loopback and forwards each connection to `to`; returns where it listens.
    pub async fn start(to: SocketAddr) -> io::Result<(SocketAddr, Arc<Self>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let recorder = Arc::new(Self {
            kept: Mutex::new(Kept::default()),
        });
        let accepting = Arc::clone(&recorder);
        tokio::spawn(async move {
            while let Ok((client, client_addr)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(to).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let connection = Arc::new(Mutex::new(Connection {
                    client: client_addr,
                    server: to,
                    start: SystemTime::now(),
                    events: Vec::new(),
                }));
                lock(&accepting.kept)
                    .connections
                    .push(Arc::clone(&connection));
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let up = (Arc::clone(&accepting), Arc::clone(&connection));
                tokio::spawn(pump(
                    up.0,
                    up.1,
                    Direction::Dialer,
                    client_read,
                    server_write,
                ));
                tokio::spawn(pump(
                    Arc::clone(&accepting),
                    connection,
                    Direction::Acceptor,
                    server_read,
                    client_write,
                ));
            }
        });
        Ok((local, recorder))
    }

    /// A case ended: forgets the connections since the last case ended, after writing them to
    /// `path` as pcapng when there is one.
    pub fn case_ended(&self, path: Option<&Path>) -> io::Result<()> {
        let kept = std::mem::take(&mut *lock(&self.kept));
        let Some(path) = path else {
            return Ok(());
        };
        let mut pcap = PcapWriter::new(BufWriter::new(File::create(path)?))?;
        for connection in kept.connections {
            let connection = lock(&connection);
            let mut flow = Flow::open(
                &mut pcap,
                connection.client,
                connection.server,
                connection.start,
            )?;
            let mut inspector = Inspector::new();
            for event in &connection.events {
                match event {
                    Event::Data(time, direction, bytes) => {
                        for record in inspector.push(*direction, bytes) {
                            let from_client = *direction == Direction::Dialer;
                            flow.data(&mut pcap, from_client, &record.bytes, *time)?;
                        }
                    }
                    Event::End(time, direction) => {
                        let from_client = *direction == Direction::Dialer;
                        if let Some(record) = inspector.finish(*direction) {
                            flow.data(&mut pcap, from_client, &record.bytes, *time)?;
                        }
                        flow.fin(&mut pcap, from_client, *time)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Forwards one direction and keeps what it carries (within [`MAX_KEPT`]).
async fn pump(
    recorder: Arc<Recorder>,
    connection: Arc<Mutex<Connection>>,
    direction: Direction,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
) {
    let mut buf = vec![0u8; 64 * 1024];
    // Once a chunk does not fit, nothing more of this direction is kept: what is kept is always
    // the stream's beginning, without gaps.
    let mut keeping = true;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let bytes = buf.get(..n).unwrap_or_default();
        if to.write_all(bytes).await.is_err() {
            break;
        }
        keeping = keeping && {
            let mut kept = lock(&recorder.kept);
            let fits = kept.bytes.saturating_add(n) <= MAX_KEPT;
            if fits {
                kept.bytes = kept.bytes.saturating_add(n);
            }
            fits
        };
        if keeping {
            lock(&connection).events.push(Event::Data(
                SystemTime::now(),
                direction,
                bytes.to_vec(),
            ));
        }
    }
    lock(&connection)
        .events
        .push(Event::End(SystemTime::now(), direction));
    let _ = to.shutdown().await;
}

/// A case id as a file name: `wire/FRAME-2/bad-magic` as `wire_FRAME-2_bad-magic`.
pub fn file_name(case: &str) -> String {
    let name: String = case
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}.pcapng")
}

//! The transport against a scripted controller, in this process: the test plays the controller
//! and the peer's host at the HCI level, down to the timing of the controller's buffers. Needs
//! no virtual controller, so it runs with the workspace's tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use acm_transport::{DeviceId, Transport};
use acm_transport_ble::{BleConfig, BleTransport, HciEndpoint, binding};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;

/// The one connection's handle.
const HANDLE: u16 = 0x0001;
/// The controller's LE ACL buffers: their size and number.
const ACL_LEN: u16 = 251;
const ACL_BUFFERS: u8 = 4;
/// How long the air takes to carry one ACL packet from the host (one buffer freed, with a
/// Number Of Completed Packets event, each tick): about 250 kB/s.
const AIR_TICK: Duration = Duration::from_millis(1);
/// The channel id on the scripted peer's side, and the LE signalling channel.
const PEER_CID: u16 = 0x0040;
const SIGNALLING: u16 = 0x0005;

/// An HCI event.
fn event(code: u8, params: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x04, code, params.len() as u8];
    packet.extend_from_slice(params);
    packet
}

/// A Command Complete event with status success and `returned` after it.
fn complete(opcode: u16, returned: &[u8]) -> Vec<u8> {
    let [lo, hi] = opcode.to_le_bytes();
    let mut params = vec![1, lo, hi, 0];
    params.extend_from_slice(returned);
    event(0x0E, &params)
}

/// An ACL packet carrying the whole L2CAP PDU `pdu` to the host.
fn acl(pdu: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x02];
    packet.extend_from_slice(&(HANDLE | 0x2000).to_le_bytes());
    packet.extend_from_slice(&(pdu.len() as u16).to_le_bytes());
    packet.extend_from_slice(pdu);
    packet
}

fn l2cap(cid: u16, body: &[u8]) -> Vec<u8> {
    let mut pdu = (body.len() as u16).to_le_bytes().to_vec();
    pdu.extend_from_slice(&cid.to_le_bytes());
    pdu.extend_from_slice(body);
    pdu
}

/// A K-frame carrying the whole SDU `sdu` on the host's channel `cid`.
fn k_frame(cid: u16, sdu: &[u8]) -> Vec<u8> {
    let mut body = (sdu.len() as u16).to_le_bytes().to_vec();
    body.extend_from_slice(sdu);
    l2cap(cid, &body)
}

/// What the scripted controller and the test share.
struct Shared {
    to_host: mpsc::UnboundedSender<Vec<u8>>,
    /// Signalled once the connection is up.
    connected: Notify,
    /// The host's answers to channel requests: its channel id and the result.
    responses: mpsc::UnboundedSender<(u16, u16)>,
    /// The credits the host granted the scripted peer.
    credits: Semaphore,
    /// The SDUs the host sent on the channel.
    sdus: mpsc::UnboundedSender<Vec<u8>>,
    /// How many SDUs the host sent on the channel.
    sdu_count: AtomicUsize,
    /// ACL packets from the host the air has not carried yet.
    in_flight: AtomicUsize,
}

/// A controller on a TCP port that serves one host: it answers the host's commands, connects
/// it as peripheral as soon as it advertises, frees one ACL buffer per [`AIR_TICK`], and plays
/// the peer's side of the L2CAP channel through [`Shared`].
struct Scripted {
    address: SocketAddr,
    shared: Arc<Shared>,
    responses: mpsc::UnboundedReceiver<(u16, u16)>,
    sdus: mpsc::UnboundedReceiver<Vec<u8>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Scripted {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (to_host, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
        let (responses_tx, responses) = mpsc::unbounded_channel();
        let (sdus_tx, sdus) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            to_host,
            connected: Notify::new(),
            responses: responses_tx,
            credits: Semaphore::new(0),
            sdus: sdus_tx,
            sdu_count: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        });
        let serving = shared.clone();
        let serve = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut reader, mut writer) = stream.into_split();
            let write = async {
                while let Some(packet) = outgoing.recv().await {
                    if writer.write_all(&packet).await.is_err() {
                        break;
                    }
                }
            };
            let air = async {
                let mut tick = tokio::time::interval(AIR_TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let carried =
                        serving
                            .in_flight
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                                n.checked_sub(1)
                            });
                    if carried.is_ok() {
                        let [lo, hi] = HANDLE.to_le_bytes();
                        let _ = serving.to_host.send(event(0x13, &[1, lo, hi, 1, 0]));
                    }
                }
            };
            let read = serve_host(&serving, &mut reader);
            tokio::select! {
                () = write => {}
                () = air => {}
                () = read => {}
            }
        });
        Self {
            address,
            shared,
            responses,
            sdus,
            tasks: vec![serve],
        }
    }

    /// Opens the acm channel as the peer would, exchanges OPENs, and returns the host's
    /// channel id.
    async fn open_channel(&mut self, peer: &DeviceId) -> u16 {
        self.shared.connected.notified().await;
        for id in 1u8.. {
            let mut request = vec![0x14, id, 10, 0];
            request.extend_from_slice(&binding::SPSM.to_le_bytes());
            request.extend_from_slice(&PEER_CID.to_le_bytes());
            request.extend_from_slice(&binding::SDU_MTU.to_le_bytes());
            request.extend_from_slice(&binding::MPS.to_le_bytes());
            request.extend_from_slice(&u16::MAX.to_le_bytes());
            self.send(&l2cap(SIGNALLING, &request));
            let (cid, result) = self.responses.recv().await.unwrap();
            if result == 0 {
                self.send_sdu(cid, &binding::open(peer)).await;
                let open = self.sdus.recv().await.unwrap();
                assert!(
                    binding::is_reserved(&open),
                    "the host's first SDU is its OPEN"
                );
                return cid;
            }
            // Refused: the host was not listening yet.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        unreachable!()
    }

    fn send(&self, pdu: &[u8]) {
        self.shared.to_host.send(acl(pdu)).unwrap();
    }

    /// Sends `sdu` to the host on its channel `cid` once the host has granted a credit for it.
    async fn send_sdu(&self, cid: u16, sdu: &[u8]) {
        self.shared.credits.acquire().await.unwrap().forget();
        self.send(&k_frame(cid, sdu));
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Reads the host's packets until the stream ends: answers its commands, and takes its ACL
/// data.
async fn serve_host(shared: &Shared, reader: &mut (impl AsyncReadExt + Unpin)) {
    let mut connected = false;
    let mut pdu: Vec<u8> = Vec::new();
    loop {
        let Ok(kind) = reader.read_u8().await else {
            return;
        };
        match kind {
            0x01 => {
                let mut header = [0; 3];
                if reader.read_exact(&mut header).await.is_err() {
                    return;
                }
                let mut params = vec![0; usize::from(header[2])];
                if reader.read_exact(&mut params).await.is_err() {
                    return;
                }
                let opcode = u16::from_le_bytes([header[0], header[1]]);
                for packet in answer(opcode, &params) {
                    let _ = shared.to_host.send(packet);
                }
                // LE Set Advertising Enable: the peer connects at once, the first time.
                if opcode == 0x200A && params.first() == Some(&1) && !connected {
                    connected = true;
                    let [lo, hi] = HANDLE.to_le_bytes();
                    let connection = [
                        0x01, 0, lo, hi, 1, 1, 1, 2, 3, 4, 5, 0xC6, 6, 0, 0, 0, 0x90, 1, 0,
                    ];
                    let _ = shared.to_host.send(event(0x3E, &connection));
                    shared.connected.notify_one();
                }
            }
            0x02 => {
                let mut header = [0; 4];
                if reader.read_exact(&mut header).await.is_err() {
                    return;
                }
                let mut data = vec![0; usize::from(u16::from_le_bytes([header[2], header[3]]))];
                if reader.read_exact(&mut data).await.is_err() {
                    return;
                }
                shared.in_flight.fetch_add(1, Ordering::AcqRel);
                if u16::from_le_bytes([header[0], header[1]]) & 0x3000 == 0x1000 {
                    pdu.extend_from_slice(&data);
                } else {
                    pdu = data;
                }
                if pdu.len() >= 4
                    && pdu.len() >= 4 + usize::from(u16::from_le_bytes([pdu[0], pdu[1]]))
                {
                    from_host(shared, &std::mem::take(&mut pdu));
                }
            }
            other => panic!("the host sent a packet of kind {other:#04x}"),
        }
    }
}

/// The answers to the host's command `opcode`.
fn answer(opcode: u16, params: &[u8]) -> Vec<Vec<u8>> {
    let [lo, hi] = opcode.to_le_bytes();
    match opcode {
        // Read BD_ADDR.
        0x1009 => vec![complete(opcode, &[1, 2, 3, 4, 5, 6])],
        // LE Read Buffer Size.
        0x2002 => {
            let [a, b] = ACL_LEN.to_le_bytes();
            vec![complete(opcode, &[a, b, ACL_BUFFERS])]
        }
        // LE Read Local Supported Features: none.
        0x2003 => vec![complete(opcode, &[0; 8])],
        // LE Read Filter Accept List Size.
        0x200F => vec![complete(opcode, &[8])],
        // Disconnect: done at once.
        0x0406 => {
            let status = event(0x0F, &[0, 1, lo, hi]);
            let done = event(0x05, &[0, params[0], params[1], 0x16]);
            vec![status, done]
        }
        // Everything else succeeds with nothing to return.
        _ => vec![complete(opcode, &[])],
    }
}

/// A whole L2CAP PDU from the host.
fn from_host(shared: &Shared, pdu: &[u8]) {
    let cid = u16::from_le_bytes([pdu[2], pdu[3]]);
    let body = &pdu[4..];
    let u16_at = |at: usize| u16::from_le_bytes([body[at], body[at + 1]]);
    match (cid, body.first()) {
        // LE Credit Based Connection Response: the host's channel id, its credits, the result.
        (SIGNALLING, Some(0x15)) => {
            let (cid, credits, result) = (u16_at(4), u16_at(10), u16_at(12));
            if result == 0 {
                shared.credits.add_permits(usize::from(credits));
            }
            let _ = shared.responses.send((cid, result));
        }
        // LE Flow Control Credit.
        (SIGNALLING, Some(0x16)) => shared.credits.add_permits(usize::from(u16_at(6))),
        (PEER_CID, _) => {
            shared.sdu_count.fetch_add(1, Ordering::AcqRel);
            let _ = shared.sdus.send(body[2..].to_vec());
        }
        _ => {}
    }
}

fn id(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_keep_arriving_while_the_other_direction_is_kept_full() {
    // The host sends frames as fast as the air carries them, and the peer grants all the
    // credits it could want; meanwhile the peer sends a few small frames. Each one the host's
    // reader takes is answered with a credit, which goes out on the same connection as the
    // frames: it must not wait for the sending direction to run dry.
    const OUT_FRAMES: usize = 200;
    const OUT_LEN: usize = 16 << 10;
    const IN_FRAMES: usize = 10;
    let mut controller = Scripted::start().await;
    let config =
        BleConfig::new(id("tablet"), HciEndpoint::Tcp(controller.address)).with_tuning(false);
    let transport = BleTransport::start(config).await.unwrap();
    let cid = tokio::time::timeout(
        Duration::from_secs(20),
        controller.open_channel(&id("phone")),
    )
    .await
    .expect("the channel opens");
    let link = transport.accept().await.unwrap();

    let sending = async {
        for _ in 0..OUT_FRAMES {
            link.send(Bytes::from(vec![0x55; OUT_LEN])).await.unwrap();
        }
    };
    let test = async {
        // The sending direction is full once the host has sent a few frames.
        while controller.shared.sdu_count.load(Ordering::Acquire) < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let offering = async {
            for i in 0..IN_FRAMES {
                controller
                    .send_sdu(cid, format!("inbound {i}").as_bytes())
                    .await;
            }
        };
        let receiving = async {
            for i in 0..IN_FRAMES {
                let frame = tokio::time::timeout(Duration::from_secs(5), link.recv())
                    .await
                    .unwrap_or_else(|_| {
                        panic!(
                            "frame {i} of {IN_FRAMES} did not arrive within 5 s \
                             (the host had sent {} of its {OUT_FRAMES} frames)",
                            controller.shared.sdu_count.load(Ordering::Acquire) - 1
                        )
                    })
                    .unwrap();
                assert_eq!(frame, format!("inbound {i}").as_bytes());
            }
        };
        tokio::join!(offering, receiving);
        let sent = controller.shared.sdu_count.load(Ordering::Acquire) - 1;
        (started.elapsed(), sent)
    };
    let (elapsed, sent) = tokio::select! {
        () = sending => panic!("the host sent all its frames before the peer's arrived"),
        outcome = test => outcome,
    };
    assert!(
        sent < OUT_FRAMES,
        "the host's frames were all on the air before the peer's arrived"
    );
    eprintln!(
        "{IN_FRAMES} frames arrived in {elapsed:?}, while the host sent {sent} frames of {OUT_LEN} bytes"
    );
}

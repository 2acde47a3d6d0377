//! The host stack's HCI transport: whole H4 packets over the byte stream to the controller.
//!
//! Reading goes through a buffer, and each packet is written in one write, so that a packet
//! costs the controller's socket one read and one write rather than one per field. On the way:
//!
//! * every packet, as it crossed the stream, goes to the HCI log when there is one;
//! * ACL data from the controller goes through the [`Gate`], which hands the host stack each
//!   L2CAP PDU whole, in fragments that fit what the host stack reads (its buffer holds 255
//!   bytes of payload), and holds back an acm channel's K-frames while the host stack has no
//!   room for them. HCI lets either side fragment an L2CAP PDU over several ACL packets; some
//!   controllers (Bumble's) send a whole PDU in one packet whatever the host's buffer size;
//! * the host can be handed a stand-in answer to a command its controller never answered
//!   ([`StandIns`]): the host stack sends a command only once the previous one was answered,
//!   so a controller that ignores one command would otherwise stop every command after it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::rc::Rc;

use bt_hci::ReadHciError;
use bt_hci::transport::{PacketKind, PacketToController, PacketToHost, Transport, WithIndicator};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::mutex::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

use super::gate::Gate;
use crate::snoop::HciLog;

/// H4 packet indicators.
const COMMAND: u8 = 0x01;
pub(super) const ACL: u8 = 0x02;
const SCO: u8 = 0x03;
pub(super) const EVENT: u8 = 0x04;
const ISO: u8 = 0x05;
/// HCI events the stand-ins are made of.
const COMMAND_COMPLETE: u8 = 0x0E;
const COMMAND_STATUS: u8 = 0x0F;
/// How much of the controller's stream is read at once.
const READ_BUFFER: usize = 64 << 10;

/// The byte stream from the controller.
pub(crate) type HciReader = Box<dyn AsyncRead + Unpin>;
/// The byte stream to the controller.
pub(crate) type HciWriter = Box<dyn AsyncWrite + Unpin>;

/// Why the stream to the controller failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(std::io::ErrorKind),
    /// The controller closed the stream.
    #[error("the controller closed the stream")]
    Closed,
    /// A byte that begins no H4 packet.
    #[error("byte {0:#04x} begins no HCI packet")]
    NotH4(u8),
    /// A packet the host stack could not read.
    #[error("a malformed HCI packet")]
    Malformed,
}

impl embedded_io_async::Error for StreamError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        match self {
            Self::Io(_) => embedded_io_async::ErrorKind::Other,
            Self::Closed => embedded_io_async::ErrorKind::BrokenPipe,
            Self::NotH4(_) | Self::Malformed => embedded_io_async::ErrorKind::InvalidData,
        }
    }
}

impl From<std::io::Error> for StreamError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Self::Closed,
            kind => Self::Io(kind),
        }
    }
}

impl From<ReadHciError<Infallible>> for StreamError {
    fn from(_: ReadHciError<Infallible>) -> Self {
        Self::Malformed
    }
}

/// The length of the header after the indicator of an H4 packet of kind `kind`.
fn header_len(kind: u8) -> Option<usize> {
    match kind {
        COMMAND | SCO => Some(3),
        EVENT => Some(2),
        ACL | ISO => Some(4),
        _ => None,
    }
}

/// The payload length an H4 header of kind `kind` gives.
fn payload_len(kind: u8, header: &[u8]) -> usize {
    match (kind, header) {
        (COMMAND | SCO, [_, _, len]) | (EVENT, [_, len]) => usize::from(*len),
        (ACL, [_, _, lo, hi]) => usize::from(u16::from_le_bytes([*lo, *hi])),
        (ISO, [_, _, lo, hi]) => usize::from(u16::from_le_bytes([*lo, *hi]) & 0x3FFF),
        _ => 0,
    }
}

/// Reads one whole H4 packet, indicator first.
async fn read_packet(stream: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, StreamError> {
    let kind = stream.read_u8().await?;
    let header_len = header_len(kind).ok_or(StreamError::NotH4(kind))?;
    let mut packet = vec![kind; 1 + header_len];
    stream.read_exact(&mut packet[1..]).await?;
    let body = payload_len(kind, &packet[1..]);
    packet.resize(1 + header_len + body, 0);
    stream.read_exact(&mut packet[1 + header_len..]).await?;
    Ok(packet)
}

/// Answers for the host in place of ones its controller never sent, handed to the host
/// before the controller's next packet.
#[derive(Debug, Default)]
pub(crate) struct StandIns {
    queue: RefCell<VecDeque<Vec<u8>>>,
    ready: Notify,
}

impl StandIns {
    /// A Command Status event for `opcode` with `status`, allowing one more command: the answer
    /// to a command that completes later.
    pub(crate) fn command_status(&self, opcode: u16, status: u8) {
        let [lo, hi] = opcode.to_le_bytes();
        self.push(vec![EVENT, COMMAND_STATUS, 4, status, 1, lo, hi]);
    }

    /// A Command Complete event for `opcode` with `status` and no other return parameter,
    /// allowing one more command.
    pub(crate) fn command_complete(&self, opcode: u16, status: u8) {
        let [lo, hi] = opcode.to_le_bytes();
        self.push(vec![EVENT, COMMAND_COMPLETE, 4, 1, lo, hi, status]);
    }

    fn push(&self, packet: Vec<u8>) {
        self.queue.borrow_mut().push_back(packet);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<Vec<u8>> {
        self.queue.borrow_mut().pop_front()
    }
}

/// The reading half: a buffer over the controller's stream.
struct Incoming {
    stream: BufReader<HciReader>,
}

/// The HCI transport the host stack drives.
pub(crate) struct HciStream {
    reader: Mutex<NoopRawMutex, Incoming>,
    writer: Mutex<NoopRawMutex, HciWriter>,
    log: Option<HciLog>,
    stand_ins: Rc<StandIns>,
    gate: Rc<Gate>,
}

impl HciStream {
    /// The transport over `reader` and `writer`, logging to `log` if given, handing the host
    /// the answers queued in `stand_ins`, its ACL data through `gate`.
    pub(crate) fn new(
        reader: HciReader,
        writer: HciWriter,
        log: Option<HciLog>,
        stand_ins: Rc<StandIns>,
        gate: Rc<Gate>,
    ) -> Self {
        Self {
            reader: Mutex::new(Incoming {
                stream: BufReader::with_capacity(READ_BUFFER, reader),
            }),
            writer: Mutex::new(writer),
            log,
            stand_ins,
            gate,
        }
    }

    /// The next packet for the host stack: one the gate lets through (a packet from the
    /// controller, a fragment of one, or K-frames it held), or a stand-in.
    async fn next_packet(&self) -> Result<Vec<u8>, StreamError> {
        let mut incoming = self.reader.lock().await;
        loop {
            let released = self.gate.released();
            let stand_in = self.stand_ins.ready.notified();
            if let Some(packet) = self.gate.next() {
                return Ok(packet);
            }
            if let Some(packet) = self.stand_ins.pop() {
                return Ok(packet);
            }
            // Wait for the controller's next byte, a stand-in or held K-frames let go; only
            // then read the packet, which is not interrupted.
            tokio::select! {
                filled = incoming.stream.fill_buf() => {
                    if filled?.is_empty() {
                        return Err(StreamError::Closed);
                    }
                }
                () = stand_in => continue,
                () = released => continue,
            }
            let packet = read_packet(&mut incoming.stream).await?;
            if let Some(log) = &self.log {
                log.received(&packet);
            }
            self.gate.received(packet);
        }
    }
}

impl embedded_io_async::ErrorType for HciStream {
    type Error = StreamError;
}

impl Transport for HciStream {
    async fn read<'a, P: PacketToHost<'a>>(&self, rx: &'a mut [u8]) -> Result<P, StreamError> {
        let packet = self.next_packet().await?;
        let mut bytes: &[u8] = &packet;
        let kind = PacketKind::read_async(&mut bytes).await?;
        Ok(P::read_hci_async(kind, &mut bytes, rx).await?)
    }

    async fn write<P: PacketToController>(&self, tx: &P) -> Result<(), StreamError> {
        let mut packet = Vec::with_capacity(5 + tx.size());
        let Ok(()) = WithIndicator::new(tx).write_hci_async(&mut packet).await;
        if let Some(log) = &self.log {
            log.sent(&packet);
        }
        self.gate.sent(&packet);
        let mut writer = self.writer.lock().await;
        writer.write_all(&packet).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every packet the stream hands the host, until the input ends.
    fn packets_of(input: &[u8], stand_ins: Rc<StandIns>) -> Vec<Vec<u8>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let reader: HciReader = Box::new(std::io::Cursor::new(input.to_vec()));
        let stream = HciStream::new(
            reader,
            Box::new(tokio::io::sink()),
            None,
            stand_ins,
            Rc::default(),
        );
        runtime.block_on(async {
            let mut out = Vec::new();
            while let Ok(packet) = stream.next_packet().await {
                out.push(packet);
            }
            out
        })
    }

    #[test]
    fn short_packets_pass_unchanged() {
        let event = vec![EVENT, 0x0E, 3, 1, 2, 3];
        let acl = vec![ACL, 0x40, 0x20, 6, 0, 2, 0, 0x40, 0, 0xAA, 0xBB];
        let input = [event.clone(), acl.clone()].concat();
        assert_eq!(packets_of(&input, Rc::default()), vec![event, acl]);
    }

    #[test]
    fn long_acl_packets_become_a_first_fragment_and_continuations() {
        let mut payload: Vec<u8> = (0..600u16).map(|i| i as u8).collect();
        payload[..2].copy_from_slice(&596u16.to_le_bytes());
        let mut input = vec![ACL, 0x40, 0x20];
        input.extend_from_slice(&600u16.to_le_bytes());
        input.extend_from_slice(&payload);
        let mut expected = Vec::new();
        for (i, chunk) in payload.chunks(super::super::gate::MAX_FRAGMENT).enumerate() {
            let flags: u16 = if i == 0 { 0x2040 } else { 0x1040 };
            let mut fragment = vec![ACL];
            fragment.extend_from_slice(&flags.to_le_bytes());
            fragment.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
            fragment.extend_from_slice(chunk);
            expected.push(fragment);
        }
        assert_eq!(packets_of(&input, Rc::default()), expected);
    }

    #[test]
    fn a_stream_cut_mid_packet_ends_without_the_partial_packet() {
        let whole = vec![EVENT, 0x0E, 2, 1, 2];
        let mut input = whole.clone();
        input.extend_from_slice(&[ACL, 0x40, 0x20, 9, 0, 0xAA]);
        assert_eq!(packets_of(&input, Rc::default()), vec![whole]);
    }

    #[test]
    fn a_byte_that_begins_no_packet_ends_the_stream() {
        let whole = vec![EVENT, 0x0E, 1, 1];
        let input = [whole.clone(), vec![0x7F, 0, 0]].concat();
        assert_eq!(packets_of(&input, Rc::default()), vec![whole]);
    }

    #[test]
    fn stand_ins_come_before_the_controllers_next_packet() {
        let stand_ins = Rc::new(StandIns::default());
        // LE Set PHY (0x2032), left unanswered: status 0x01, one more command allowed.
        stand_ins.command_status(0x2032, 0x01);
        stand_ins.command_complete(0x2022, 0x01);
        let event = vec![EVENT, 0x3E, 1, 0x0C];
        assert_eq!(
            packets_of(&event, stand_ins),
            vec![
                vec![EVENT, 0x0F, 4, 0x01, 1, 0x32, 0x20],
                vec![EVENT, 0x0E, 4, 1, 0x22, 0x20, 0x01],
                event,
            ]
        );
    }

    #[test]
    fn packets_are_logged_as_read_before_they_are_cut() {
        let path = std::env::temp_dir().join(format!("acm-stream-{}.log", std::process::id()));
        let mut acl = vec![ACL, 0x40, 0x20];
        acl.extend_from_slice(&300u16.to_le_bytes());
        acl.extend_from_slice(&296u16.to_le_bytes());
        acl.extend_from_slice(&[0x55; 298]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let reader: HciReader = Box::new(std::io::Cursor::new(acl.clone()));
        let log = HciLog::create(&path).unwrap();
        let stream = HciStream::new(
            reader,
            Box::new(tokio::io::sink()),
            Some(log),
            Rc::default(),
            Rc::default(),
        );
        let handed = runtime.block_on(async {
            let mut n = 0;
            while stream.next_packet().await.is_ok() {
                n += 1;
            }
            n
        });
        drop(stream);
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(handed, 2);
        // One record: the packet as the controller sent it.
        assert_eq!(bytes.len(), 16 + 24 + acl.len());
        assert_eq!(&bytes[16 + 24..], &acl[..]);
    }
}

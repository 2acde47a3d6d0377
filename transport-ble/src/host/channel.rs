//! One link on the host thread: opening its channel's first exchange, then carrying frames both
//! ways until it ends.

use std::time::Duration;

use acm_transport::DeviceId;
use bytes::Bytes;
use trouble_host::prelude::CreditFlowPolicy;
use trouble_host::prelude::{
    L2capChannel, L2capChannelConfig, L2capChannelReader, L2capChannelWriter, Stack,
};

use super::Hci;
use super::connections::{Entry, Hold};
use super::gate::{Gate, Opened};

use crate::binding::{self, MPS, SDU_MTU, Sdu};
use crate::carry::{SduReceiver, SduSender, carry};
use crate::link::HostEnd;
use crate::pool::HeapPool;

/// The channel parameters this side offers, granting `credits` (SPEC `BLE-2`, `BLE-13`,
/// `BLE-14`).
pub(crate) fn channel_config(credits: u16) -> L2capChannelConfig {
    L2capChannelConfig {
        mtu: Some(SDU_MTU),
        mps: Some(MPS),
        flow_policy: CreditFlowPolicy::Every(1),
        initial_credits: Some(credits),
    }
}

/// A channel's place in its host's [`Gate`]: the reader reports through it each SDU it takes;
/// dropping it forgets the channel.
pub(crate) struct Gated {
    gate: std::rc::Rc<Gate>,
    handle: u16,
    cid: u16,
}

impl Gated {
    /// Claims in `gate` the channel the host stack just opened as `side` on `connection`:
    /// `None` if the gate did not see it open.
    pub(crate) fn claim(
        gate: &std::rc::Rc<Gate>,
        connection: &trouble_host::prelude::Connection<'_, HeapPool>,
        side: Opened,
    ) -> Option<Self> {
        let handle = connection.handle().raw();
        let cid = gate.claim(handle, side)?;
        Some(Self {
            gate: gate.clone(),
            handle,
            cid,
        })
    }

    /// The reader took an SDU from the host stack.
    fn taken(&self) {
        self.gate.taken(self.handle, self.cid);
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        self.gate.forget(self.handle, self.cid);
    }
}

/// Why the first exchange on a channel failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The channel went down.
    Down,
    /// The peer's first SDU was not an OPEN.
    NotOpen,
    /// No OPEN arrived in time.
    TimedOut,
}

/// The first exchange: the dialer sends its OPEN and waits for the acceptor's; the acceptor
/// waits for the dialer's OPEN before it answers with its own (so a dialer never receives an SDU
/// before it has sent one). Returns the id the peer's OPEN names.
pub(crate) async fn exchange_open(
    stack: &Stack<'_, Hci, HeapPool>,
    channel: &mut L2capChannel<'_, HeapPool>,
    gated: &Gated,
    local: &DeviceId,
    dialer: bool,
    timeout: Duration,
) -> Result<DeviceId, OpenError> {
    let exchange = async {
        if dialer {
            channel
                .send(stack, &binding::open(local))
                .await
                .map_err(|_| OpenError::Down)?;
        }
        let sdu = channel
            .receive_sdu(stack)
            .await
            .map_err(|_| OpenError::Down)?;
        gated.taken();
        let Ok(Sdu::Open(peer)) = binding::parse(Bytes::copy_from_slice(sdu.as_ref())) else {
            return Err(OpenError::NotOpen);
        };
        if !dialer {
            channel
                .send(stack, &binding::open(local))
                .await
                .map_err(|_| OpenError::Down)?;
        }
        Ok(peer)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(OpenError::TimedOut))
}

/// The receiving half of a trouble-host channel, counting what it carries on its connection.
struct Receiving<'r, 'a, 's> {
    stack: &'r Stack<'s, Hci, HeapPool>,
    reader: L2capChannelReader<'a, HeapPool>,
    gated: &'r Gated,
    connection: &'r Entry<'a>,
}

impl SduReceiver for Receiving<'_, '_, '_> {
    async fn receive(&mut self) -> Option<Bytes> {
        let sdu = self.reader.receive_sdu(self.stack).await.ok()?;
        self.gated.taken();
        self.connection.carried(sdu.len());
        Some(Bytes::copy_from_slice(sdu.as_ref()))
    }
}

/// How often a send that waits for credits looks again whether its channel is still up.
const CREDIT_RECHECK: Duration = Duration::from_millis(500);

/// The sending half of a trouble-host channel, counting what it carries on its connection.
struct Sending<'r, 'a, 's> {
    stack: &'r Stack<'s, Hci, HeapPool>,
    writer: L2capChannelWriter<'a, HeapPool>,
    connection: &'r Entry<'a>,
}

impl SduSender for Sending<'_, '_, '_> {
    async fn send(&mut self, sdu: &[u8]) -> bool {
        self.connection.carried(sdu.len());
        // trouble-host wakes a send that waits for credits only when credits come: not when the
        // peer takes the channel down, after which none ever will. The send is polled again
        // every CREDIT_RECHECK (never dropped, so no SDU is cut), and one whose channel is down
        // then fails.
        let mut send = std::pin::pin!(self.writer.send(self.stack, sdu));
        let sent = loop {
            if let Ok(sent) = tokio::time::timeout(CREDIT_RECHECK, &mut send).await {
                break sent.is_ok();
            }
        };
        // trouble-host lets one K-frame at a time onto a connection (its ACL send lock), and
        // gives the lock to whoever asks first once it is free: a send that finds the next frame
        // and credits waiting asks again at once, before the tasks woken by the release run.
        // The credits this side's reader grants (each SDU it takes waits for its credit to go
        // out), other channels' frames and the host's signalling on the connection would wait
        // until this direction ran dry. Yielding after each SDU lets each of them have its turn.
        tokio::task::yield_now().await;
        sent
    }
}

/// Carries frames both ways on an open channel until the link ends, then takes the channel
/// down, and the connection too when no other link is on it.
pub(crate) async fn drive<'a>(
    stack: &Stack<'_, Hci, HeapPool>,
    hold: Hold<'a>,
    channel: L2capChannel<'a, HeapPool>,
    gated: Gated,
    end: HostEnd,
    close_timeout: Duration,
) {
    let peer_mtu = usize::from(channel.peer_mtu());
    let (writer, reader) = channel.split();
    let entry = hold.entry().clone();
    let mut receiving = Receiving {
        stack,
        reader,
        gated: &gated,
        connection: &entry,
    };
    let mut sending = Sending {
        stack,
        writer,
        connection: &entry,
    };
    let lost = || {
        if hold.connection.is_connected() {
            "the channel went down without a CLOSE".to_owned()
        } else {
            "the Bluetooth LE connection was lost".to_owned()
        }
    };
    carry(
        &mut receiving,
        &mut sending,
        end,
        peer_mtu,
        close_timeout,
        lost,
    )
    .await;
    sending.writer.disconnect();
    receiving.reader.disconnect();
    drop(gated);
    drop(hold);
}

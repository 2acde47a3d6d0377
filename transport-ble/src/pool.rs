//! The packet pool the host stack allocates L2CAP packets from: heap buffers of the largest SDU,
//! reused, with a fixed cap on how many exist at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use trouble_host::{Packet, PacketPool};

/// The size of every buffer: a whole SDU is reassembled in one.
const BUFFER: usize = 65535;
/// The most buffers alive at once, in this process: 32 MiB. Each channel can hold as many
/// received SDUs as it grants credits (at most `binding::MAX_CREDITS`, 32): a host's 8 channels
/// can hold 256 buffers when every reader stalls, and a process may run two hosts.
const CAP: usize = 512;
/// The most idle buffers kept for reuse.
const KEEP: usize = 32;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static IDLE: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

/// The pool type the host stack is built with.
pub(crate) struct HeapPool;

/// One buffer of the pool; returns to it when dropped.
pub(crate) struct HeapPacket(Option<Box<[u8]>>);

impl AsRef<[u8]> for HeapPacket {
    fn as_ref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl AsMut<[u8]> for HeapPacket {
    fn as_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Packet for HeapPacket {}

impl Drop for HeapPacket {
    fn drop(&mut self) {
        if let Some(buffer) = self.0.take() {
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < KEEP {
                idle.push(buffer);
            }
            LIVE.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl PacketPool for HeapPool {
    type Packet = HeapPacket;
    const MTU: usize = BUFFER;

    fn allocate() -> Option<HeapPacket> {
        LIVE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
            (live < CAP).then_some(live + 1)
        })
        .ok()?;
        let reused = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Some(HeapPacket(Some(
            reused.unwrap_or_else(|| vec![0; BUFFER].into_boxed_slice()),
        )))
    }

    fn capacity() -> usize {
        CAP
    }
}

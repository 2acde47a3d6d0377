//! Putting transfers back together from their fragments (SPEC section 6.3).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::budget::{Charge, MemoryBudget};
use crate::data::DataFragment;
use crate::error::ReassemblyError;
use crate::limits::Limits;
use crate::pool::{BufferPool, PoolBuf};

/// The most bytes reserved up front for a transfer's buffer; beyond this the buffer grows as
/// fragments arrive, so a peer's declared length alone never makes the receiver allocate.
const INITIAL_CAPACITY: usize = 64 * 1024;

/// The shortest chunk kept as it arrived rather than copied, when it is the only user of its
/// buffer (a shorter one is copied into the transfer's buffer as it is appended).
pub const MIN_KEPT_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
struct Partial {
    declared: u64,
    next_index: u32,
    /// Bytes received so far: those of `kept` and `buf`.
    received: u64,
    /// The transfer's bytes, in order, while they have all come in large chunks kept without
    /// copying; empty once copying has begun.
    kept: Vec<Bytes>,
    /// The bytes copied as they arrived, the kept chunks first; no buffer until the first copy.
    buf: Option<PoolBuf>,
    /// Whether `buf` came from the pool, whole, rather than being allocated as bytes arrived.
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    reused: bool,
    /// The declared length, charged against the device's budget, if there is one: it moves to
    /// the bytes delivered.
    charge: Option<Charge>,
}

impl Partial {
    /// A transfer of `declared` bytes, in a buffer of the pool if it keeps one that fits.
    fn new(declared: u64, pool: &BufferPool) -> Self {
        let buf = usize::try_from(declared)
            .ok()
            .and_then(|len| pool.take(len));
        Self {
            declared,
            next_index: 0,
            received: 0,
            kept: Vec::new(),
            reused: buf.is_some(),
            buf,
            charge: None,
        }
    }

    /// Adds the next chunk. A chunk of at least [`MIN_KEPT_CHUNK`] bytes that is the only
    /// reference to its buffer (a transport that carries one frame per message hands such
    /// chunks over once their frame is parsed with [`DataFragment::from_frame`]) is kept as it
    /// is, as long as nothing has been copied yet and the pool had no buffer for the transfer:
    /// it costs no copy and holds no memory that is not the transfer's own. Any other chunk is
    /// copied, so that a chunk sharing a larger receive buffer never keeps that buffer alive,
    /// and once copying has begun every later chunk is copied too, so that the one growing
    /// buffer is never frozen half-used.
    ///
    /// A buffer allocated here grows with the bytes that arrive: by doubling, never past the
    /// declared length, and never more than [`INITIAL_CAPACITY`] ahead of the bytes received.
    /// The chunks kept until then are copied into it as copying begins, and let go at once: a
    /// transfer that ends in a short chunk is delivered in that buffer, with no other buffer
    /// allocated for its last bytes and no second copy.
    fn append(&mut self, chunk: Bytes, pool: &BufferPool) {
        if chunk.is_empty() {
            return;
        }
        self.received = self.received.saturating_add(chunk.len() as u64);
        if self.buf.is_none() && chunk.len() >= MIN_KEPT_CHUNK && chunk.is_unique() {
            self.kept.push(chunk);
            return;
        }
        let kept = std::mem::take(&mut self.kept);
        let kept_len: usize = kept.iter().map(Bytes::len).sum();
        let buf = self.buf.get_or_insert_with(|| pool.fresh(0));
        let needed = buf
            .len()
            .saturating_add(kept_len)
            .saturating_add(chunk.len());
        if needed > buf.capacity() {
            let declared = usize::try_from(self.declared).unwrap_or(usize::MAX);
            let grown = buf
                .capacity()
                .saturating_mul(2)
                .max(INITIAL_CAPACITY)
                .min(declared)
                .max(needed);
            buf.reserve_exact(grown.saturating_sub(buf.len()));
        }
        for piece in kept {
            buf.extend_from_slice(&piece);
        }
        buf.extend_from_slice(&chunk);
    }

    /// The whole transfer: copied once into one buffer if it arrived in several pieces, not at
    /// all if it is one piece.
    fn finish(mut self, pool: &BufferPool) -> Bytes {
        let bytes = self.join(pool);
        match self.charge.take() {
            Some(charge) => charge.attach(bytes),
            None => bytes,
        }
    }

    fn join(&mut self, pool: &BufferPool) -> Bytes {
        // Chunks are kept only until copying begins: the transfer is in `buf`, or in `kept`.
        if self.kept.is_empty() {
            return self.buf.take().map(PoolBuf::freeze).unwrap_or_default();
        }
        if self.kept.len() == 1 {
            return self.kept.pop().unwrap_or_default();
        }
        let len = usize::try_from(self.received).unwrap_or(usize::MAX);
        let mut whole = pool.take(len).unwrap_or_else(|| pool.fresh(len));
        for piece in &self.kept {
            whole.extend_from_slice(piece);
        }
        whole.freeze()
    }

    /// The bytes held now: `(received, allocated)`, counting kept chunks as their length and a
    /// buffer that came whole from the pool as its length (it was allocated before, for bytes
    /// that arrived then).
    #[cfg(feature = "fuzzing")]
    fn footprint(&self) -> (usize, usize) {
        let kept: usize = self.kept.iter().map(Bytes::len).sum();
        let (len, capacity) = self
            .buf
            .as_ref()
            .map_or((0, 0), |b| (b.len(), b.capacity()));
        let allocated = if self.reused { len } else { capacity };
        (kept.saturating_add(len), kept.saturating_add(allocated))
    }
}

/// Reassembles the data transfers of one link. Transfers of every channel may interleave; each
/// is delivered whole, once its LAST fragment arrives, or not at all.
///
/// Memory is bounded: a transfer is admitted by its FIRST fragment only if its declared length
/// is within `max_data_size`, the declared lengths of all unfinished transfers stay within
/// `max_reassembly_bytes`, and there are fewer than `max_transfers` of them. Buffers grow with the
/// bytes that arrive, never ahead of them by more than 64 KiB, unless the reassembler's
/// [`BufferPool`] keeps one, left by an earlier transfer, that the whole transfer fits in.
///
/// Any error drops the transfer it concerns (when there is one) and frees its memory; the caller
/// then closes the session on the error's channel and calls [`Reassembler::abort_channel`].
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    partials: HashMap<(u32, u32), Partial>,
    /// The highest transfer id begun on each channel (SPEC `DATA-3`).
    last_begun: BTreeMap<u32, u32>,
    reserved: u64,
    /// Where delivered transfers' buffers go back to, and new transfers take them from.
    pool: BufferPool,
    /// The device's budget, which every link's transfers share, if there is one.
    budget: Option<MemoryBudget>,
}

impl Reassembler {
    /// A reassembler that enforces `limits`, with a pool of its own of
    /// [`DEFAULT_POOL_BYTES`](crate::pool::DEFAULT_POOL_BYTES).
    pub fn new(limits: Limits) -> Self {
        Self::with_pool(limits, BufferPool::default())
    }

    /// A reassembler that enforces `limits` and delivers transfers in buffers of `pool`, which
    /// other reassemblers may share.
    pub fn with_pool(limits: Limits, pool: BufferPool) -> Self {
        Self {
            limits,
            partials: HashMap::new(),
            last_begun: BTreeMap::new(),
            reserved: 0,
            pool,
            budget: None,
        }
    }

    /// Also admits transfers only within `budget`, which the reassemblers of a device's other
    /// links share: a transfer's declared length is charged at its FIRST fragment and stays
    /// charged until the bytes delivered are dropped (see [`crate::budget`]).
    ///
    /// The buffers the reassembler's pool keeps for reuse count in `budget` too
    /// ([`BufferPool::charge_to`]), and give way to transfers: one that does not fit in what
    /// the budget has left has the pool free its buffers first.
    #[must_use]
    pub fn with_budget(mut self, budget: MemoryBudget) -> Self {
        self.pool.charge_to(&budget);
        self.budget = Some(budget);
        self
    }

    /// The device's budget, if the reassembler has one.
    pub fn budget(&self) -> Option<&MemoryBudget> {
        self.budget.as_ref()
    }

    /// Charges `declared` bytes against the device's budget, if there is one.
    fn charge(
        &self,
        channel: u32,
        transfer_id: u32,
        declared: u64,
    ) -> Result<Option<Charge>, ReassemblyError> {
        let Some(budget) = &self.budget else {
            return Ok(None);
        };
        let charge = budget.try_charge(declared).or_else(|| {
            self.pool
                .give_way(declared)
                .then(|| budget.try_charge(declared))?
        });
        match charge {
            Some(charge) => Ok(Some(charge)),
            None => Err(ReassemblyError::OverBudget {
                channel,
                transfer_id,
                declared,
                available: budget.available(),
            }),
        }
    }

    /// The pool that delivered transfers' buffers return to.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// The declared bytes of all unfinished transfers: the memory the budget has promised.
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved
    }

    /// The bytes actually buffered by unfinished transfers.
    pub fn buffered_bytes(&self) -> u64 {
        self.partials.values().map(|p| p.received).sum()
    }

    /// How much of an unfinished transfer has arrived: the bytes received and the transfer's
    /// declared length, or `None` when no such transfer is under way.
    pub fn progress(&self, channel: u32, transfer_id: u32) -> Option<(u64, u64)> {
        self.partials
            .get(&(channel, transfer_id))
            .map(|partial| (partial.received, partial.declared))
    }

    /// The number of unfinished transfers.
    pub fn transfers_in_progress(&self) -> usize {
        self.partials.len()
    }

    /// The length and the capacity of each unfinished transfer's buffer, for the memory checks
    /// of the fuzz targets.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn buffers(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.partials.values().map(Partial::footprint)
    }

    /// Takes one fragment. Returns the transfer's bytes when this was its LAST fragment.
    pub fn push(&mut self, fragment: DataFragment) -> Result<Option<Bytes>, ReassemblyError> {
        let key = (fragment.channel, fragment.transfer_id);
        match fragment.total_length {
            Some(declared) => self.begin(fragment, declared),
            None => match self.partials.remove(&key) {
                Some(partial) => self.resume(fragment, partial),
                None => Err(ReassemblyError::UnknownTransfer {
                    channel: fragment.channel,
                    transfer_id: fragment.transfer_id,
                    index: fragment.index,
                }),
            },
        }
    }

    /// Drops every unfinished transfer of `channel` and forgets the channel (its session ended).
    pub fn abort_channel(&mut self, channel: u32) {
        let reserved = &mut self.reserved;
        self.partials.retain(|&(c, _), partial| {
            if c == channel {
                *reserved = reserved.saturating_sub(partial.declared);
            }
            c != channel
        });
        self.last_begun.remove(&channel);
    }

    /// Drops one unfinished transfer, if it exists.
    pub fn abort(&mut self, channel: u32, transfer_id: u32) {
        if let Some(partial) = self.partials.remove(&(channel, transfer_id)) {
            self.reserved = self.reserved.saturating_sub(partial.declared);
        }
    }

    fn begin(
        &mut self,
        fragment: DataFragment,
        declared: u64,
    ) -> Result<Option<Bytes>, ReassemblyError> {
        let DataFragment {
            channel,
            transfer_id,
            index,
            last,
            ..
        } = fragment;
        // A FIRST fragment that breaks DATA-2 or DATA-3 may belong to a transfer in progress (a
        // repeated FIRST, or FIRST set on a later fragment): that transfer is dropped too.
        if index != 0 {
            self.abort(channel, transfer_id);
            return Err(ReassemblyError::FirstIndexNotZero {
                channel,
                transfer_id,
                index,
            });
        }
        if let Some(&last_id) = self.last_begun.get(&channel)
            && transfer_id <= last_id
        {
            self.abort(channel, transfer_id);
            return Err(ReassemblyError::StaleTransferId {
                channel,
                transfer_id,
                last: last_id,
            });
        }
        if declared > self.limits.max_data_size {
            return Err(ReassemblyError::TooLarge {
                channel,
                transfer_id,
                declared,
                max: self.limits.max_data_size,
            });
        }
        let chunk_len = fragment.chunk.len() as u64;
        if chunk_len > declared {
            return Err(ReassemblyError::Overrun {
                channel,
                transfer_id,
                declared,
            });
        }
        if last {
            self.last_begun.insert(channel, transfer_id);
            if chunk_len < declared {
                return Err(ReassemblyError::Incomplete {
                    channel,
                    transfer_id,
                    declared,
                    received: chunk_len,
                });
            }
            // A transfer in one fragment is delivered without copying.
            return Ok(Some(match self.charge(channel, transfer_id, declared)? {
                Some(charge) => charge.attach(fragment.chunk),
                None => fragment.chunk,
            }));
        }
        if fragment.chunk.is_empty() {
            return Err(ReassemblyError::EmptyFragment {
                channel,
                transfer_id,
                index,
            });
        }
        if self.partials.len() >= self.limits.max_transfers {
            return Err(ReassemblyError::TooManyTransfers {
                channel,
                transfer_id,
                max: self.limits.max_transfers,
            });
        }
        let available = self
            .limits
            .max_reassembly_bytes
            .saturating_sub(self.reserved);
        if declared > available {
            return Err(ReassemblyError::OverBudget {
                channel,
                transfer_id,
                declared,
                available,
            });
        }
        let charge = self.charge(channel, transfer_id, declared)?;
        self.last_begun.insert(channel, transfer_id);
        self.reserved = self.reserved.saturating_add(declared);
        let mut partial = Partial::new(declared, &self.pool);
        partial.charge = charge;
        partial.next_index = 1;
        partial.append(fragment.chunk, &self.pool);
        self.partials.insert((channel, transfer_id), partial);
        Ok(None)
    }

    fn resume(
        &mut self,
        fragment: DataFragment,
        mut partial: Partial,
    ) -> Result<Option<Bytes>, ReassemblyError> {
        // From here on the transfer is out of the map; every error leaves it dropped.
        let result = Self::check_next(&partial, &fragment);
        if let Err(err) = result {
            self.reserved = self.reserved.saturating_sub(partial.declared);
            return Err(err);
        }
        let DataFragment {
            channel,
            transfer_id,
            index,
            last,
            chunk,
            ..
        } = fragment;
        partial.append(chunk, &self.pool);
        if last {
            self.reserved = self.reserved.saturating_sub(partial.declared);
            return Ok(Some(partial.finish(&self.pool)));
        }
        partial.next_index = index.saturating_add(1);
        self.partials.insert((channel, transfer_id), partial);
        Ok(None)
    }

    fn check_next(partial: &Partial, fragment: &DataFragment) -> Result<(), ReassemblyError> {
        let (channel, transfer_id, got) = (fragment.channel, fragment.transfer_id, fragment.index);
        let expected = partial.next_index;
        if got < expected {
            return Err(ReassemblyError::DuplicateFragment {
                channel,
                transfer_id,
                expected,
                got,
            });
        }
        if got > expected {
            return Err(ReassemblyError::OutOfOrder {
                channel,
                transfer_id,
                expected,
                got,
            });
        }
        if fragment.chunk.is_empty() && !fragment.last {
            return Err(ReassemblyError::EmptyFragment {
                channel,
                transfer_id,
                index: got,
            });
        }
        let received = partial.received.saturating_add(fragment.chunk.len() as u64);
        if received > partial.declared {
            return Err(ReassemblyError::Overrun {
                channel,
                transfer_id,
                declared: partial.declared,
            });
        }
        if fragment.last && received < partial.declared {
            return Err(ReassemblyError::Incomplete {
                channel,
                transfer_id,
                declared: partial.declared,
                received,
            });
        }
        Ok(())
    }
}

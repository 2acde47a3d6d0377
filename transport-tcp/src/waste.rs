//! The openings each address has wasted (SPEC `LIMIT-3`), so that an address that keeps
//! opening connections which come to nothing is refused at once, before its OPEN exchange.
//!
//! An opening is wasted when this side ends it before the peer has sent anything of use: its
//! OPEN did not come in time, was malformed, or was pushed out by a newer one (`LIMIT-2`), or
//! its link was dropped or closed by this side before the peer sent a frame on it. A peer that
//! ends its own connection wastes nothing, and neither does one whose opening finds the accept
//! queue full.
//!
//! Each address has a debt of wasted openings that is forgiven at a steady rate (a cell rate
//! check: the debt is kept as the instant at which it will be paid off). While an address owes
//! more than its allowance, its new connections are dropped at once, without a task, a read or
//! an answer. Refusals are not charged, so an address that keeps trying gets a new opening
//! through at the rate its debt is forgiven, and is forgiven entirely once it stops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// The most addresses whose debt is kept. When a new one must be added while this many owe
/// something, the one that owes least is forgotten: an attacker with more addresses than this
/// can make the ledger forget some, but never make it grow.
pub(crate) const MAX_DEBTORS: usize = 4096;

/// How much an address may waste, and how fast it is forgiven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowance {
    /// The wasted openings an address may owe before its connections are refused; 0 turns the
    /// ledger off.
    pub(crate) burst: usize,
    /// How long one wasted opening is owed for: the inverse of the rate of forgiveness.
    pub(crate) each: Duration,
}

impl Allowance {
    /// The most an address can owe, as the time it takes to forgive: its whole allowance.
    fn limit(self) -> Duration {
        self.each
            .saturating_mul(u32::try_from(self.burst).unwrap_or(u32::MAX))
    }
}

/// The wasted openings of every address, shared by the listener and the links it hands out.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    allowance: Allowance,
    debts: Arc<Mutex<HashMap<IpAddr, Instant>>>,
}

impl Ledger {
    pub(crate) fn new(allowance: Allowance) -> Self {
        Self {
            allowance,
            debts: Arc::default(),
        }
    }

    fn debts(&self) -> MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.debts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a new connection from `address` is to be refused at once: it owes its whole
    /// allowance (more than all of it but one opening, which is forgiven part of the way).
    pub(crate) fn refuses(&self, address: IpAddr) -> bool {
        if self.allowance.burst == 0 {
            return false;
        }
        let now = Instant::now();
        let debts = self.debts();
        debts.get(&address).is_some_and(|paid| {
            paid.saturating_duration_since(now) > self.allowance.limit() - self.allowance.each
        })
    }

    /// Counts one opening wasted by `address`.
    pub(crate) fn charge(&self, address: IpAddr) {
        if self.allowance.burst == 0 {
            return;
        }
        let now = Instant::now();
        let mut debts = self.debts();
        if debts.len() >= MAX_DEBTORS && !debts.contains_key(&address) {
            debts.retain(|_, paid| *paid > now);
            if debts.len() >= MAX_DEBTORS
                && let Some(least) = debts.iter().min_by_key(|(_, paid)| **paid).map(|(a, _)| *a)
            {
                debts.remove(&least);
            }
        }
        let paid = debts.entry(address).or_insert(now);
        // Owed from now if paid off already; never more than the whole allowance, so that an
        // address that stops is forgiven within the time the allowance takes, however much it
        // wasted before.
        let from = (*paid).max(now);
        *paid = (from + self.allowance.each).min(now + self.allowance.limit());
    }

    /// How many addresses owe something (for tests).
    #[cfg(test)]
    fn debtors(&self) -> usize {
        let now = Instant::now();
        self.debts().values().filter(|paid| **paid > now).count()
    }
}

/// An opening that is charged to its address when dropped, unless [`Charge::forgive`] said it
/// wasted nothing.
#[derive(Debug)]
pub(crate) struct Charge {
    ledger: Option<Ledger>,
    address: IpAddr,
}

impl Charge {
    pub(crate) fn new(ledger: &Ledger, address: IpAddr) -> Self {
        Self {
            ledger: Some(ledger.clone()),
            address,
        }
    }

    /// The opening wasted nothing: dropping it charges nobody.
    pub(crate) fn forgive(mut self) {
        self.ledger = None;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.charge(self.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xC000_0200 + n))
    }

    fn ledger(burst: usize) -> Ledger {
        Ledger::new(Allowance {
            burst,
            each: Duration::from_millis(100),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_is_refused_once_it_owes_its_allowance_and_forgiven_at_the_rate() {
        let ledger = ledger(3);
        for _ in 0..2 {
            ledger.charge(ip(1));
        }
        assert!(!ledger.refuses(ip(1)), "2 of 3 wasted");
        ledger.charge(ip(1));
        assert!(ledger.refuses(ip(1)), "3 of 3 wasted");
        assert!(!ledger.refuses(ip(2)), "another address owes nothing");
        // One opening is forgiven every 100 ms.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(!ledger.refuses(ip(1)));
        ledger.charge(ip(1));
        assert!(ledger.refuses(ip(1)));
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(ledger.debtors(), 0, "paid off once it stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_debt_never_grows_past_the_allowance() {
        let ledger = ledger(3);
        for _ in 0..1000 {
            ledger.charge(ip(1));
        }
        assert!(ledger.refuses(ip(1)));
        // 3 owed: refused for 100 ms and paid off in 300 ms, not in 100 s.
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(ledger.refuses(ip(1)));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!ledger.refuses(ip(1)));
        assert_eq!(ledger.debtors(), 1);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(ledger.debtors(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ledger_keeps_at_most_its_bound_of_addresses() {
        let ledger = ledger(3);
        for n in 0..(MAX_DEBTORS as u32 + 100) {
            ledger.charge(ip(n));
        }
        assert_eq!(ledger.debts().len(), MAX_DEBTORS);
        // The newest is kept, whoever was forgotten for it.
        assert!(ledger.debts().contains_key(&ip(MAX_DEBTORS as u32 + 99)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_charge_forgiven_charges_nobody_and_one_dropped_charges_its_address() {
        let ledger = ledger(1);
        Charge::new(&ledger, ip(1)).forgive();
        assert!(!ledger.refuses(ip(1)));
        drop(Charge::new(&ledger, ip(1)));
        assert!(ledger.refuses(ip(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_allowance_of_none_turns_the_ledger_off() {
        let ledger = ledger(0);
        for _ in 0..10 {
            ledger.charge(ip(1));
        }
        assert!(!ledger.refuses(ip(1)));
        assert_eq!(ledger.debtors(), 0);
    }
}

//! What scanning has seen: the acm devices nearby and their addresses.

use std::cell::RefCell;
use std::collections::HashMap;

use acm_transport::{DeviceId, DeviceInfo};
use bt_hci::param::{AddrKind, BdAddr, LeAdvReportsIter, LeExtAdvReportsIter};
use trouble_host::Address;
use trouble_host::prelude::EventHandler;

use crate::advert;

/// The most advertisers remembered; past it, a new one is not recorded.
const MAX_ENTRIES: usize = 256;

struct Entry {
    address: Address,
    acm: bool,
    id: Option<DeviceId>,
}

/// Advertising reports gathered while scanning, keyed by address.
#[derive(Default)]
pub(crate) struct Book {
    entries: RefCell<HashMap<[u8; 7], Entry>>,
}

/// An address as a map key: its kind, then its six bytes.
fn key(address: &Address) -> [u8; 7] {
    address.to_bytes()
}

/// An address written as people do: most significant byte first.
pub(crate) fn format_address(address: &Address) -> String {
    let raw = address.addr.raw();
    let mut text = String::with_capacity(17);
    for (i, byte) in raw.iter().rev().enumerate() {
        if i > 0 {
            text.push(':');
        }
        text.push_str(&format!("{byte:02X}"));
    }
    text
}

impl Book {
    /// Forgets everything seen.
    pub(crate) fn clear(&self) {
        self.entries.borrow_mut().clear();
    }

    /// The acm devices seen, one per id.
    pub(crate) fn devices(&self) -> Vec<DeviceInfo> {
        let mut seen: Vec<DeviceInfo> = self
            .entries
            .borrow()
            .iter()
            .filter(|(_, entry)| entry.acm)
            .filter_map(|(_, entry)| {
                let id = entry.id.clone()?;
                let address = format_address(&entry.address);
                Some(DeviceInfo::new(id.clone(), id.as_str(), address))
            })
            .collect();
        seen.sort_by(|a, b| a.id.cmp(&b.id));
        seen.dedup_by(|a, b| a.id == b.id);
        seen
    }

    /// The address of the acm device `id`, if it has been seen.
    pub(crate) fn address_of(&self, id: &DeviceId) -> Option<Address> {
        self.entries
            .borrow()
            .values()
            .find(|entry| entry.acm && entry.id.as_ref() == Some(id))
            .map(|entry| entry.address)
    }
}

impl Book {
    /// Records what an advertising report from the address `addr` of kind `kind` carried.
    fn record(&self, kind: AddrKind, addr: BdAddr, data: &[u8]) {
        let address = Address { kind, addr };
        let mut entries = self.entries.borrow_mut();
        let full = entries.len() >= MAX_ENTRIES;
        let entry = match entries.get_mut(&key(&address)) {
            Some(entry) => entry,
            None if full => return,
            None => entries.entry(key(&address)).or_insert(Entry {
                address,
                acm: false,
                id: None,
            }),
        };
        let seen = advert::read(data);
        entry.acm |= seen.acm;
        if seen.id.is_some() {
            entry.id = seen.id;
        }
    }
}

impl EventHandler for Book {
    fn on_adv_reports(&self, reports: LeAdvReportsIter) {
        for report in reports.flatten() {
            self.record(report.addr_kind, report.addr, report.data);
        }
    }

    /// Controllers may report legacy advertising in extended reports (Bumble's does when the
    /// host enables both kinds of report).
    fn on_ext_adv_reports(&self, reports: LeExtAdvReportsIter) {
        for report in reports.flatten() {
            self.record(report.addr_kind, report.addr, report.data);
        }
    }
}

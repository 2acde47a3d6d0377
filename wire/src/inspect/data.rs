//! DATA frames as an inspector reads them: the data header, and each fragment's place in its
//! transfer (`DATA-1` to `DATA-5`).

use super::*;

/// The data header of a DATA frame, and its place in its transfer (section 6).
pub(super) fn data(side: &mut Side, record: &mut Record, header: FrameHeader, payload: &[u8]) {
    let first = header.flags & FLAG_FIRST != 0;
    let last = header.flags & FLAG_LAST != 0;
    let needed: usize = if first { 16 } else { 8 };
    if payload.len() < needed {
        record.note(
            "DATA-1",
            format!(
                "a DATA payload of {} bytes is shorter than its {needed}-byte data header",
                payload.len()
            ),
        );
        return;
    }
    let word = |at: usize| {
        let mut b = [0; 4];
        b.copy_from_slice(payload.get(at..at.saturating_add(4)).unwrap_or(&[0; 4]));
        u32::from_be_bytes(b)
    };
    let id = word(0);
    let index = word(4);
    let total = first.then(|| u64::from(word(8)) << 32 | u64::from(word(12)));
    let chunk = payload.len().saturating_sub(needed) as u64;
    record.fields.push(("transfer".into(), id.to_string()));
    record.fields.push(("index".into(), index.to_string()));
    if let Some(total) = total {
        record.fields.push(("total".into(), total.to_string()));
    }
    let channel = header.channel;
    let mut problem = |rule: &'static str, text: String| record.note(rule, text);
    let key = (channel, id);
    let mut offset = None;
    if let Some(total) = total {
        if index != 0 {
            problem("DATA-2", format!("a FIRST fragment with index {index}"));
        }
        match side.last_transfer.get(&channel) {
            Some(&previous) if id <= previous => problem(
                "DATA-3",
                format!("transfer id {id} is not above {previous}, the last one begun"),
            ),
            _ => {}
        }
        if side.last_transfer.len() < MAX_TRACKED || side.last_transfer.contains_key(&channel) {
            side.last_transfer.insert(channel, id);
        }
        offset = Some(0);
        if chunk > total {
            problem("DATA-5", format!("{chunk} bytes in a transfer of {total}"));
        } else if last && chunk < total {
            problem(
                "DATA-5",
                format!("LAST after {chunk} bytes of a transfer of {total}"),
            );
        } else if !last && side.transfers.len() < MAX_TRACKED {
            side.transfers.insert(
                key,
                Transfer {
                    next_index: 1,
                    received: chunk,
                    total,
                },
            );
        }
    } else if let Some(transfer) = side.transfers.get_mut(&key) {
        offset = Some(transfer.received);
        let received = transfer.received.saturating_add(chunk);
        if index != transfer.next_index {
            problem(
                "DATA-4",
                format!("fragment {index} where {} is due", transfer.next_index),
            );
            side.transfers.remove(&key);
        } else if chunk == 0 && !last {
            problem("DATA-4", "an empty fragment that is not LAST".into());
            side.transfers.remove(&key);
        } else if received > transfer.total {
            problem(
                "DATA-5",
                format!("{received} bytes in a transfer of {}", transfer.total),
            );
            side.transfers.remove(&key);
        } else if last {
            if received < transfer.total {
                problem(
                    "DATA-5",
                    format!("LAST after {received} bytes of {}", transfer.total),
                );
            }
            side.transfers.remove(&key);
        } else {
            transfer.received = received;
            transfer.next_index = transfer.next_index.saturating_add(1);
        }
    } else {
        problem(
            "DATA-4",
            format!("fragment {index} of transfer {id}, which is not in progress"),
        );
    }
    if let Some(offset) = offset {
        record.fields.push(("offset".into(), offset.to_string()));
    }
    record.fields.push(("bytes".into(), chunk.to_string()));
}

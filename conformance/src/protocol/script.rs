//! Sequences as text a person reads and replays: one step a line, the case they belong to
//! first (`acm conformance --replay FILE`).
//!
//! ```text
//! case scenarios/SESS-3/random-scenarios
//! create A 1 notes
//! create B 2 notes
//! connect 1 chan 3
//! accept chan 3 into 2
//! message 2 payload 4 len 40
//! lose
//! ```

use std::fmt::Write as _;

use super::implementation::{LinkFault, SERVICES, Side};
use super::transition::{AcceptInto, Transition};

/// What a script's first lines say about its steps.
const LEGEND: &str = "\
# A is the suite's device, B the other one (over the wire: the target's scenario app, SPEC
# section 15.1). `create` names a session, `connect ... chan` the handshake it starts, and the
# send steps the payload they carry; `accept`/`reject` answer a handshake's request.
";

/// One step as a line.
pub fn step(transition: &Transition) -> String {
    match transition {
        Transition::Create {
            side,
            handle,
            service,
            ghost,
        } => {
            let ghost = if *ghost { " ghost" } else { "" };
            let service = SERVICES.get(*service).copied().unwrap_or("?");
            format!("create {side} {handle} {service}{ghost}")
        }
        Transition::Connect { handle, chan } => format!("connect {handle} chan {chan}"),
        Transition::Accept { chan, into } => match into {
            AcceptInto::Fresh(handle) => format!("accept chan {chan} into new {handle}"),
            AcceptInto::Existing(handle) => format!("accept chan {chan} into {handle}"),
        },
        Transition::Reject { chan } => format!("reject chan {chan}"),
        Transition::SendMessage { handle, id, len } => {
            format!("message {handle} payload {id} len {len}")
        }
        Transition::SendData { handle, id, len } => format!("data {handle} payload {id} len {len}"),
        Transition::SendEvent { handle, id } => format!("event {handle} payload {id}"),
        Transition::Disconnect { handle } => format!("disconnect {handle}"),
        Transition::Destroy { handle } => format!("destroy {handle}"),
        Transition::Fault(fault) => match fault {
            LinkFault::Stall(side) => format!("stall {side}"),
            LinkFault::Unstall(side) => format!("unstall {side}"),
            LinkFault::DropFrames(side, n) => format!("drop {side} {n}"),
            LinkFault::CorruptFrames(side, n) => format!("corrupt {side} {n}"),
            LinkFault::Lose => "lose".into(),
        },
        Transition::Advance { ms } => format!("wait {ms} ms"),
    }
}

/// A whole script: the case, a legend, the steps.
pub fn script(case: &str, transitions: &[Transition]) -> String {
    let mut text = format!("case {case}\n{LEGEND}");
    for transition in transitions {
        let _ = writeln!(text, "{}", step(transition));
    }
    text
}

fn side(word: &str) -> Result<Side, String> {
    match word {
        "A" => Ok(Side::A),
        "B" => Ok(Side::B),
        other => Err(format!("{other:?} is no side (A or B)")),
    }
}

fn number<T: std::str::FromStr>(word: &str) -> Result<T, String> {
    word.parse()
        .map_err(|_| format!("{word:?} is not a number that fits"))
}

/// One line as a step.
pub fn parse_step(line: &str) -> Result<Transition, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let transition = match words.as_slice() {
        ["create", s, handle, service, rest @ ..] => Transition::Create {
            side: side(s)?,
            handle: number(handle)?,
            service: SERVICES
                .iter()
                .position(|name| name == service)
                .ok_or_else(|| format!("{service:?} is none of the services {SERVICES:?}"))?,
            ghost: match rest {
                [] => false,
                ["ghost"] => true,
                _ => return Err("create ends with its service, or `ghost`".into()),
            },
        },
        ["connect", handle, "chan", chan] => Transition::Connect {
            handle: number(handle)?,
            chan: number(chan)?,
        },
        ["accept", "chan", chan, "into", "new", handle] => Transition::Accept {
            chan: number(chan)?,
            into: AcceptInto::Fresh(number(handle)?),
        },
        ["accept", "chan", chan, "into", handle] => Transition::Accept {
            chan: number(chan)?,
            into: AcceptInto::Existing(number(handle)?),
        },
        ["reject", "chan", chan] => Transition::Reject {
            chan: number(chan)?,
        },
        ["message", handle, "payload", id, "len", len] => Transition::SendMessage {
            handle: number(handle)?,
            id: number(id)?,
            len: number(len)?,
        },
        ["data", handle, "payload", id, "len", len] => Transition::SendData {
            handle: number(handle)?,
            id: number(id)?,
            len: number(len)?,
        },
        ["event", handle, "payload", id] => Transition::SendEvent {
            handle: number(handle)?,
            id: number(id)?,
        },
        ["disconnect", handle] => Transition::Disconnect {
            handle: number(handle)?,
        },
        ["destroy", handle] => Transition::Destroy {
            handle: number(handle)?,
        },
        ["stall", s] => Transition::Fault(LinkFault::Stall(side(s)?)),
        ["unstall", s] => Transition::Fault(LinkFault::Unstall(side(s)?)),
        ["drop", s, n] => Transition::Fault(LinkFault::DropFrames(side(s)?, number(n)?)),
        ["corrupt", s, n] => Transition::Fault(LinkFault::CorruptFrames(side(s)?, number(n)?)),
        ["lose"] => Transition::Fault(LinkFault::Lose),
        ["wait", ms, "ms"] => Transition::Advance { ms: number(ms)? },
        _ => return Err("not a step".into()),
    };
    Ok(transition)
}

/// A script's case and steps; comments (`#` to the end of the line) and blank lines are
/// skipped.
pub fn parse_script(text: &str) -> Result<(String, Vec<Transition>), String> {
    let mut case = None;
    let mut steps = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        match (line.strip_prefix("case "), &case) {
            (Some(id), None) => case = Some(id.trim().to_string()),
            (Some(_), Some(_)) => return Err(format!("line {}: a second case", i + 1)),
            (None, None) => {
                return Err(format!("line {}: the script starts with `case ID`", i + 1));
            }
            (None, Some(_)) => {
                steps.push(parse_step(line).map_err(|e| format!("line {}: {e}", i + 1))?);
            }
        }
    }
    let case = case.ok_or("the script has no `case ID` line")?;
    Ok((case, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_step_reads_back_as_it_was_written() {
        let steps = [
            Transition::Create {
                side: Side::B,
                handle: 1,
                service: 2,
                ghost: true,
            },
            Transition::Create {
                side: Side::A,
                handle: 2,
                service: 0,
                ghost: false,
            },
            Transition::Connect { handle: 1, chan: 3 },
            Transition::Accept {
                chan: 3,
                into: AcceptInto::Fresh(4),
            },
            Transition::Accept {
                chan: 3,
                into: AcceptInto::Existing(2),
            },
            Transition::Reject { chan: 3 },
            Transition::SendMessage {
                handle: 2,
                id: 5,
                len: 1025,
            },
            Transition::SendData {
                handle: 2,
                id: 6,
                len: 0,
            },
            Transition::SendEvent { handle: 2, id: 7 },
            Transition::Disconnect { handle: 2 },
            Transition::Destroy { handle: 2 },
            Transition::Fault(LinkFault::Stall(Side::A)),
            Transition::Fault(LinkFault::Unstall(Side::B)),
            Transition::Fault(LinkFault::DropFrames(Side::A, 2)),
            Transition::Fault(LinkFault::CorruptFrames(Side::B, 1)),
            Transition::Fault(LinkFault::Lose),
            Transition::Advance { ms: 1500 },
        ];
        let text = script("scenarios/SESS-3/random-scenarios", &steps);
        let (case, read) = parse_script(&text).expect("a script");
        assert_eq!(case, "scenarios/SESS-3/random-scenarios");
        assert_eq!(read, steps);
    }

    #[test]
    fn a_bad_script_says_where() {
        assert!(
            parse_script("create A 1 notes")
                .unwrap_err()
                .contains("line 1")
        );
        let err = parse_script("case x\n\ncreate C 1 notes").unwrap_err();
        assert!(err.contains("line 3") && err.contains("side"), "{err}");
        assert!(parse_step("create A 1 music").is_err());
        assert!(parse_step("message 1 payload x len 3").is_err());
    }
}

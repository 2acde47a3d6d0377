//! The steps of the model: what an app, the network or the clock does next. A step prints as
//! one line, and a line parses back into the step, so that a counterexample is a list of
//! lines that replays as a regression test.

use std::fmt;
use std::str::FromStr;

use acm_engine::device::SessionId;

/// The devices of the model, by index: the names they have on the wire.
pub const DEVICES: [&str; 3] = ["phone", "tablet", "watch"];

/// How the network tampers with a frame as it delivers it (only when the bounds allow a
/// hostile network): what a hostile peer or path could do, which the engine must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tamper {
    /// A CONNECT_RESPONSE arrives with another token than its request's (SPEC `SESS-4`).
    ForgeToken,
    /// A MESSAGE arrives with a text over 1024 bytes (SPEC `MSG-1`).
    Overlong,
}

/// One step of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// An app of `device` creates a session with the app of `peer`.
    Create {
        /// The device.
        device: usize,
        /// The peer device.
        peer: usize,
    },
    /// The app connects `session` with a fresh token.
    Connect {
        /// The device.
        device: usize,
        /// The session.
        session: SessionId,
    },
    /// The app connects `session` again with the token of the device's last request: a
    /// replay, which the peer must refuse (SPEC `SESS-1`). Only on a hostile network.
    Replay {
        /// The device.
        device: usize,
        /// The session.
        session: SessionId,
    },
    /// The app accepts the request with `token` into a new session of its own.
    Accept {
        /// The device.
        device: usize,
        /// The request's token number.
        token: u64,
    },
    /// The app rejects the request with `token`.
    Reject {
        /// The device.
        device: usize,
        /// The request's token number.
        token: u64,
    },
    /// The app sends a message on `session`.
    Message {
        /// The device.
        device: usize,
        /// The session.
        session: SessionId,
    },
    /// The app sends data (several fragments) on `session`.
    Data {
        /// The device.
        device: usize,
        /// The session.
        session: SessionId,
    },
    /// The app sends a collaboration event on `session`.
    Event {
        /// The device.
        device: usize,
        /// The session.
        session: SessionId,
    },
    /// The app disconnects `session`.
    Disconnect {
        /// The device.
        device: usize,
        /// The session.
        session: SessionId,
    },
    /// The app destroys `session`.
    Destroy {
        /// The device.
        device: usize,
        /// The session.
        session: SessionId,
    },
    /// The network hands the next frame from end `from` (0: the dialer, 1: the acceptor) of
    /// `wire` to the other end, or, once that end has closed the link and sent everything, the
    /// link's end.
    Deliver {
        /// The wire.
        wire: usize,
        /// The sending end.
        from: usize,
    },
    /// As [`Step::Deliver`], with the frame tampered with.
    Tamper {
        /// The wire.
        wire: usize,
        /// The sending end.
        from: usize,
        /// How.
        how: Tamper,
    },
    /// The transport loses `wire`: both ends learn it at once, and what was in flight is gone.
    Lose {
        /// The wire.
        wire: usize,
    },
    /// The clock moves on by `ms` milliseconds, to a deadline of a link (each deadline later
    /// than now is a step of its own).
    Advance {
        /// How far.
        ms: u64,
    },
    /// `device` handles the deadlines of its link on `wire` that have passed.
    Fire {
        /// The device.
        device: usize,
        /// The wire.
        wire: usize,
    },
}

fn name(device: usize) -> &'static str {
    DEVICES.get(device).copied().unwrap_or("?")
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Create { device, peer } => write!(f, "create {} {}", name(device), name(peer)),
            Self::Connect { device, session } => write!(f, "connect {} {session}", name(device)),
            Self::Replay { device, session } => write!(f, "replay {} {session}", name(device)),
            Self::Accept { device, token } => write!(f, "accept {} #{token}", name(device)),
            Self::Reject { device, token } => write!(f, "reject {} #{token}", name(device)),
            Self::Message { device, session } => write!(f, "message {} {session}", name(device)),
            Self::Data { device, session } => write!(f, "data {} {session}", name(device)),
            Self::Event { device, session } => write!(f, "event {} {session}", name(device)),
            Self::Disconnect { device, session } => {
                write!(f, "disconnect {} {session}", name(device))
            }
            Self::Destroy { device, session } => write!(f, "destroy {} {session}", name(device)),
            Self::Deliver { wire, from } => write!(f, "deliver {wire} {from}"),
            Self::Tamper { wire, from, how } => {
                let how = match how {
                    Tamper::ForgeToken => "forge-token",
                    Tamper::Overlong => "overlong",
                };
                write!(f, "tamper {wire} {from} {how}")
            }
            Self::Lose { wire } => write!(f, "lose {wire}"),
            Self::Advance { ms } => write!(f, "advance {ms}"),
            Self::Fire { device, wire } => write!(f, "fire {} {wire}", name(device)),
        }
    }
}

/// A line that is not a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadStep(pub String);

impl fmt::Display for BadStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a step: {:?}", self.0)
    }
}

impl std::error::Error for BadStep {}

impl FromStr for Step {
    type Err = BadStep;

    fn from_str(line: &str) -> Result<Self, BadStep> {
        let bad = || BadStep(line.to_string());
        let words: Vec<&str> = line.split_whitespace().collect();
        let device = |i: usize| {
            words
                .get(i)
                .and_then(|w| DEVICES.iter().position(|d| d == w))
                .ok_or_else(bad)
        };
        let number = |i: usize| {
            words
                .get(i)
                .map(|w| w.trim_start_matches('#'))
                .and_then(|w| w.parse::<u64>().ok())
                .ok_or_else(bad)
        };
        let index = |i: usize| number(i).and_then(|n| usize::try_from(n).map_err(|_| bad()));
        let step = match words.first().copied() {
            Some("create") => Self::Create {
                device: device(1)?,
                peer: device(2)?,
            },
            Some("connect") => Self::Connect {
                device: device(1)?,
                session: number(2)?,
            },
            Some("replay") => Self::Replay {
                device: device(1)?,
                session: number(2)?,
            },
            Some("accept") => Self::Accept {
                device: device(1)?,
                token: number(2)?,
            },
            Some("reject") => Self::Reject {
                device: device(1)?,
                token: number(2)?,
            },
            Some("message") => Self::Message {
                device: device(1)?,
                session: number(2)?,
            },
            Some("data") => Self::Data {
                device: device(1)?,
                session: number(2)?,
            },
            Some("event") => Self::Event {
                device: device(1)?,
                session: number(2)?,
            },
            Some("disconnect") => Self::Disconnect {
                device: device(1)?,
                session: number(2)?,
            },
            Some("destroy") => Self::Destroy {
                device: device(1)?,
                session: number(2)?,
            },
            Some("deliver") => Self::Deliver {
                wire: index(1)?,
                from: index(2)?,
            },
            Some("tamper") => Self::Tamper {
                wire: index(1)?,
                from: index(2)?,
                how: match words.get(3).copied() {
                    Some("forge-token") => Tamper::ForgeToken,
                    Some("overlong") => Tamper::Overlong,
                    _ => return Err(bad()),
                },
            },
            Some("lose") => Self::Lose { wire: index(1)? },
            Some("advance") => Self::Advance { ms: number(1)? },
            Some("fire") => Self::Fire {
                device: device(1)?,
                wire: index(2)?,
            },
            _ => return Err(bad()),
        };
        Ok(step)
    }
}

/// The steps of `text`, one a line; blank lines and lines starting with `//` are skipped.
pub fn parse_steps(text: &str) -> Result<Vec<Step>, BadStep> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_reads_back_as_it_prints() {
        let steps = [
            Step::Create { device: 0, peer: 1 },
            Step::Connect {
                device: 1,
                session: 101,
            },
            Step::Replay {
                device: 2,
                session: 102,
            },
            Step::Accept {
                device: 1,
                token: 3,
            },
            Step::Reject {
                device: 0,
                token: 4,
            },
            Step::Message {
                device: 0,
                session: 101,
            },
            Step::Data {
                device: 0,
                session: 101,
            },
            Step::Event {
                device: 0,
                session: 101,
            },
            Step::Disconnect {
                device: 0,
                session: 101,
            },
            Step::Destroy {
                device: 0,
                session: 101,
            },
            Step::Deliver { wire: 1, from: 0 },
            Step::Tamper {
                wire: 0,
                from: 1,
                how: Tamper::ForgeToken,
            },
            Step::Tamper {
                wire: 0,
                from: 1,
                how: Tamper::Overlong,
            },
            Step::Lose { wire: 1 },
            Step::Advance { ms: 10_000 },
            Step::Fire { device: 2, wire: 1 },
        ];
        for step in steps {
            assert_eq!(step.to_string().parse::<Step>(), Ok(step));
        }
        assert!("connect nobody 101".parse::<Step>().is_err());
    }
}

//! The properties of the suite: each one is the same model, with the transitions weighted to
//! explore one part of SPEC.md, and a case id that names the rules it proves.

use crate::report::Case;

/// How often each kind of transition is generated (relative weights; 0 never), and how large
/// data gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// `createAbilityConnectionSession`.
    pub create: u32,
    /// `connect`.
    pub connect: u32,
    /// `acceptConnect`.
    pub accept: u32,
    /// `reject`.
    pub reject: u32,
    /// `sendMessage`.
    pub message: u32,
    /// `sendData`.
    pub data: u32,
    /// Collaboration events.
    pub event: u32,
    /// `disconnect`.
    pub disconnect: u32,
    /// `destroyAbilityConnectionSession`.
    pub destroy: u32,
    /// Stalling and unstalling a direction of the link.
    pub stall: u32,
    /// Losing the link.
    pub lose: u32,
    /// Dropping frames.
    pub drop: u32,
    /// Corrupting frames.
    pub corrupt: u32,
    /// Letting time pass.
    pub advance: u32,
    /// Sessions whose peer ability nobody registered, in percent of the sessions created.
    pub ghost_percent: u32,
    /// The largest data transfer, in bytes.
    pub max_data: usize,
}

/// A weighting with nothing generated: properties start from it.
pub const NOTHING: Profile = Profile {
    create: 0,
    connect: 0,
    accept: 0,
    reject: 0,
    message: 0,
    data: 0,
    event: 0,
    disconnect: 0,
    destroy: 0,
    stall: 0,
    lose: 0,
    drop: 0,
    corrupt: 0,
    advance: 0,
    ghost_percent: 0,
    max_data: 4096,
};

/// One property: a case of the report, and the weighting that explores it.
pub trait Property: 'static {
    /// The case: a stable id, the rules, the title.
    const CASE: Case;
    /// The weighting.
    const PROFILE: Profile;
    /// The name of its regression file.
    const FILE: &'static str;
}

/// Handshakes: connect results and requests for every order of create, connect, accept,
/// reject, destroy and timeouts.
pub struct Handshakes;

impl Property for Handshakes {
    const CASE: Case = Case {
        id: "protocol/SESS-3/handshake-outcomes",
        rules: &["SESS-3", "SESS-4", "SESS-5", "LINK-11"],
        title: "connect resolves with the code SESS-3, SESS-4 and SESS-5 give, and each request \
                reaches the app once, for any order of create, connect, accept, reject, destroy \
                and timeouts",
        breaks: None,
    };
    const PROFILE: Profile = Profile {
        create: 6,
        connect: 8,
        accept: 6,
        reject: 2,
        disconnect: 2,
        destroy: 2,
        stall: 2,
        advance: 2,
        ghost_percent: 15,
        message: 1,
        ..NOTHING
    };
    const FILE: &'static str = "handshake-outcomes.txt";
}

/// Messages, data and events arrive whole, once and in order.
pub struct Delivery;

impl Property for Delivery {
    const CASE: Case = Case {
        id: "protocol/MSG-2/delivery-in-order",
        rules: &["MSG-1", "MSG-2", "DATA-5", "EVT-1", "FRAME-10"],
        title: "every message, data transfer and event sent on a connected session arrives \
                once, whole and in order, across stalls and sessions that interleave",
        breaks: None,
    };
    const PROFILE: Profile = Profile {
        create: 3,
        connect: 4,
        accept: 4,
        message: 8,
        data: 6,
        event: 2,
        disconnect: 1,
        stall: 2,
        advance: 1,
        max_data: 20_000,
        ..NOTHING
    };
    const FILE: &'static str = "delivery-in-order.txt";
}

/// Sessions end with the reason their peer gave.
pub struct Endings;

impl Property for Endings {
    const CASE: Case = Case {
        id: "protocol/DISC-1/disconnect-reasons",
        rules: &["DISC-1", "DISC-2", "LINK-7"],
        title: "a session ends at the peer with PEER_APP_CLOSE_COLLABORATION after disconnect, \
                PEER_APP_EXIT after destroy and NETWORK_DISCONNECTED when the link is lost, and \
                nothing arrives after it ends",
        breaks: None,
    };
    const PROFILE: Profile = Profile {
        create: 4,
        connect: 5,
        accept: 5,
        message: 3,
        data: 2,
        disconnect: 4,
        destroy: 3,
        stall: 1,
        lose: 2,
        advance: 1,
        ..NOTHING
    };
    const FILE: &'static str = "disconnect-reasons.txt";
}

/// Stalls that outlast the keepalive end the link; shorter ones lose nothing.
pub struct Stalls;

impl Property for Stalls {
    const CASE: Case = Case {
        id: "protocol/LINK-6/stalls-and-keepalive",
        rules: &["LINK-6", "LINK-7", "SESS-5"],
        title: "a stall shorter than the keepalive delays frames and loses none; a longer one \
                ends the link and every session on it with NETWORK_DISCONNECTED; handshakes time \
                out as SESS-5 says",
        breaks: None,
    };
    const PROFILE: Profile = Profile {
        create: 3,
        connect: 4,
        accept: 4,
        reject: 1,
        message: 3,
        data: 1,
        disconnect: 1,
        stall: 5,
        advance: 5,
        ..NOTHING
    };
    const FILE: &'static str = "stalls-and-keepalive.txt";
}

/// Dropped and corrupted frames never make a session deliver something twice, out of order, in
/// part, or invented.
pub struct Faults;

impl Property for Faults {
    const CASE: Case = Case {
        id: "protocol/DATA-4/faults-deliver-nothing-partial",
        rules: &["DATA-4", "DATA-5", "MSG-2", "LINK-11"],
        title: "after frames are dropped or corrupted, sessions still deliver nothing twice, out \
                of order or in part, nothing that was not sent beyond what a corruption changed, \
                and recover exactly once the link is lost",
        breaks: None,
    };
    const PROFILE: Profile = Profile {
        create: 2,
        connect: 3,
        accept: 4,
        message: 5,
        data: 5,
        disconnect: 1,
        destroy: 1,
        lose: 1,
        drop: 1,
        corrupt: 1,
        advance: 1,
        max_data: 8_000,
        ..NOTHING
    };
    const FILE: &'static str = "faults-deliver-nothing-partial.txt";
}

/// Everything at once.
pub struct Everything;

impl Property for Everything {
    const CASE: Case = Case {
        id: "protocol/SESS-3/everything",
        rules: &[
            "SESS-3", "SESS-4", "SESS-5", "MSG-2", "DISC-1", "DISC-2", "LINK-6", "LINK-7",
        ],
        title: "any sequence of API calls, stalls, losses and time keeps both devices' apps \
                exactly where the model says",
        breaks: None,
    };
    const PROFILE: Profile = Profile {
        create: 4,
        connect: 5,
        accept: 5,
        reject: 1,
        message: 3,
        data: 2,
        event: 1,
        disconnect: 2,
        destroy: 2,
        stall: 2,
        lose: 1,
        advance: 2,
        ghost_percent: 10,
        ..NOTHING
    };
    const FILE: &'static str = "everything.txt";
}

/// Random scenarios over the wire: everything a real link can do, against an implementation
/// under test driven through the profile's scenario driver (SPEC section 15.1).
pub struct Scenarios;

impl Property for Scenarios {
    const CASE: Case = Case {
        id: "scenarios/SESS-3/random-scenarios",
        rules: &[
            "SESS-3", "SESS-4", "SESS-7", "MSG-1", "MSG-2", "DATA-5", "EVT-1", "DISC-1", "DISC-2",
            "LINK-7", "PROF-1", "PROF-2", "PROF-3",
        ],
        title: "random sequences of both devices' calls over real links (sessions, crossing \
                connects, messages, data, events, disconnects, destroys, lost links) keep both \
                apps exactly where the model says",
        breaks: None,
    };
    const PROFILE: Profile = Profile {
        create: 4,
        connect: 5,
        accept: 5,
        reject: 1,
        message: 3,
        data: 3,
        event: 1,
        disconnect: 2,
        destroy: 2,
        lose: 1,
        ghost_percent: 10,
        max_data: 300_000,
        ..NOTHING
    };
    const FILE: &'static str = "random-scenarios.txt";
}

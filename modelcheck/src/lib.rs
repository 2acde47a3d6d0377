//! A bounded model checker over acm's real device engine.
//!
//! The model is two devices joined by one link, or three joined by two (phone–tablet and
//! tablet–watch), each device a real [`acm_engine::device::DeviceEngine`]. From each state the
//! explorer takes every step possible ([`Step`]): an app creates a session, connects it,
//! accepts or rejects a request routed to it, sends a message, data or an event, disconnects
//! or destroys a session; the network delivers the next frame of one direction of one link
//! (so frames of different links and directions interleave in every order while each
//! direction stays in order), or the link's end once a side has closed it, or loses a link;
//! the clock moves to the next deadline of any link, and a device handles a link's deadlines
//! that have passed. On a hostile network, bounded separately, it may also forge the token of a
//! CONNECT_RESPONSE or lengthen a MESSAGE past 1024 bytes as it delivers them, and an app may
//! reuse a token. After every step it checks the [`Property`]s, each named after the SPEC rules
//! it stands for; and from every new state it lets the network deliver everything and time
//! pass, with no app acting, and checks that nothing waits and that every connected session has
//! its twin ([`Property::EventuallyAnswered`], [`Property::Twins`]): liveness, within the time
//! SPEC's timers take.
//!
//! # State
//!
//! The engines hold `Instant`s, hash maps seeded at random, buffer pools and queues of
//! frames: they are neither `Clone` nor `Hash`, and the checker leaves them as they are. A state
//! is kept as the path of steps that reaches it, and recognised by a fingerprint: a hash of
//! everything the properties and the future depend on, read through the engines' public
//! accessors and the model's own account (each session's state and the engine's, the requests
//! waiting for each app, every link's phase and next deadline, the frames in flight byte for
//! byte, what each side sent and has yet to arrive, the budgets of steps left), with every time
//! taken relative to now, so that states reached at different times or by different paths
//! merge. To expand a state the explorer replays its path on fresh engines (the engine is
//! deterministic: each replay is checked to reach the same fingerprint) and takes each step on
//! a replay of its own. Replays cost time linear in the depth, and memory stays at a few
//! dozen bytes a state: a parent index and a step. A fingerprint may merge two states that
//! differ in what it leaves out (a link's remembered tokens beyond the model's, its
//! reassembly's partial buffers beyond their size); the exploration then misses what only the
//! second could reach, but never reports a path that does not break a property: every
//! counterexample is a real path, and it replays.
//!
//! # Explorer
//!
//! Breadth first, level by level, on as many threads as asked, with a set of fingerprints; the
//! first broken property is reported with the shortest path to it ([`Counterexample`]), one
//! step a line, which [`parse_steps`] reads back and [`replay`] runs again. The explorer is this
//! crate's own rather than `stateright`'s. Stateright would serve (its `Model` takes any
//! `Hash` state: this one would be the path, hashed by its fingerprint), but version 0.31 brings
//! fifteen crates new to the workspace and a second `rand` (tiny_http for its explorer's web
//! page, dashmap, parking_lot, ahash and others) for what is here a breadth-first loop of two
//! hundred lines; and its `eventually` properties are judged on the paths that end (in a state
//! with no successor, or at the depth boundary), where a connect still waiting at the boundary
//! would count as never answered. This model judges liveness instead by quieting the network
//! from every state.
//!
//! # Mutants
//!
//! With [`Bounds::mutation`] set, the conformance suite's protocol mutant rewrites the frames
//! of device 0 (phone) on its links, on their way out and in, as
//! `acm_conformance::mutant::Mutant` does on a transport: the checker must find each.
//!
//! ```
//! use acm_modelcheck::{Bounds, explore};
//!
//! let bounds = Bounds { depth: 4, ..Bounds::quick() };
//! let report = explore(bounds, 1, |_| {});
//! assert!(report.counterexample.is_none(), "{report}");
//! assert!(report.states > 10);
//! ```

mod explore;
mod fingerprint;
mod network;
mod observe;
mod property;
mod step;
mod world;

pub use explore::{Counterexample, Report, explore, replay};
pub use property::{Property, Violation, Witness};
pub use step::{BadStep, DEVICES, Step, Tamper, parse_steps};
pub use world::{Bounds, Mutation, World};

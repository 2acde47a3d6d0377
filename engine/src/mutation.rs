//! Deliberate defects, for proving that the conformance suites catch broken implementations.
//! Only with the crate feature `mutants`; never in a normal build.

/// One deliberate defect of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mutation {
    /// `disconnect()` tells the peer PEER_APP_EXIT instead of PEER_APP_CLOSE_COLLABORATION.
    WrongDisconnectReason,
    /// A CONNECT_RESPONSE is taken whatever token it carries (breaks `SESS-4`).
    AcceptAnyResponseToken,
    /// A replayed request token is not refused (breaks `SESS-1`).
    AcceptReplayedToken,
    /// Each fragment's bytes are delivered as they arrive, not the whole transfer.
    DeliverPartialData,
    /// Messages over 1024 bytes are delivered instead of closing the session (breaks `MSG-1`).
    IgnoreMessageLimit,
    /// The second and third fragments of a transfer are sent in swapped order (breaks `DATA-4`).
    ReorderFragments,
}

impl Mutation {
    /// Every mutation.
    pub const ALL: [Self; 6] = [
        Self::WrongDisconnectReason,
        Self::AcceptAnyResponseToken,
        Self::AcceptReplayedToken,
        Self::DeliverPartialData,
        Self::IgnoreMessageLimit,
        Self::ReorderFragments,
    ];
}

//! What a link engine is configured with.

use std::time::Duration;

use acm_wire::Limits;

/// The settings of a link engine. The defaults are SPEC.md's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Size limits enforced on the peer and announced in HELLO.
    pub limits: Limits,
    /// The keepalive interval this side asks for (SPEC `LINK-6`); the link uses the smaller of
    /// the two sides'. Default 15 s.
    pub keepalive_interval: Duration,
    /// How long to wait for the peer's HELLO (SPEC `LINK-10`). Default 10 s.
    pub hello_timeout: Duration,
    /// How long a requester waits for CONNECT_RESPONSE (SPEC `SESS-5`). Default 10 s.
    pub handshake_timeout: Duration,
    /// How long a responder keeps a request its app has not answered (SPEC `SESS-5`).
    /// Default 20 s.
    pub responder_timeout: Duration,
    /// Whether this side's transport can carry bulk data (SPEC `SESS-3`).
    pub carries_data: bool,
    /// The most sessions (connected or in handshake) one link may carry. Default 4096.
    pub max_sessions: usize,
    /// How many tokens of ended requests a link remembers to refuse replays (SPEC `SESS-1`).
    /// Default 1024.
    pub remembered_tokens: usize,
    /// The most frames answering the peer's (PONG, CONNECT_RESPONSE, a DISCONNECT for a
    /// session error) that may wait to be sent: a frame of the peer's that would be answered
    /// beyond it closes the link with `RESOURCE_EXHAUSTED` (SPEC `LINK-13`). A runtime stops
    /// reading the link well before ([`LinkEngine::queued_answers`]). Default 1024.
    ///
    /// [`LinkEngine::queued_answers`]: crate::LinkEngine::queued_answers
    pub max_queued_answers: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            keepalive_interval: Duration::from_secs(15),
            hello_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            responder_timeout: Duration::from_secs(20),
            carries_data: true,
            max_sessions: 4096,
            remembered_tokens: 1024,
            max_queued_answers: 1024,
        }
    }
}

impl EngineConfig {
    /// Sets the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the keepalive interval this side asks for; clamped to SPEC's 1 s..=600 s.
    #[must_use]
    pub fn with_keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive_interval = interval;
        self
    }

    /// Sets the handshake timeout.
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets whether the transport carries bulk data.
    #[must_use]
    pub fn with_carries_data(mut self, carries_data: bool) -> Self {
        self.carries_data = carries_data;
        self
    }

    /// Sets the most sessions a link may carry.
    #[must_use]
    pub fn with_max_sessions(mut self, max_sessions: usize) -> Self {
        self.max_sessions = max_sessions;
        self
    }

    /// Sets the most answers to the peer's frames that may wait to be sent.
    #[must_use]
    pub fn with_max_queued_answers(mut self, answers: usize) -> Self {
        self.max_queued_answers = answers;
        self
    }

    /// The keepalive interval in milliseconds as announced in HELLO, within SPEC's range.
    pub fn keepalive_ms(&self) -> u32 {
        let ms = u32::try_from(self.keepalive_interval.as_millis()).unwrap_or(u32::MAX);
        ms.clamp(
            acm_wire::limits::MIN_KEEPALIVE_MS,
            acm_wire::limits::MAX_KEEPALIVE_MS,
        )
    }
}

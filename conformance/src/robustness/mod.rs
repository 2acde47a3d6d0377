//! The robustness suite: black-box over TCP, against any implementation running the
//! conformance profile (SPEC section 15). While the suite plays an attacker (connections that
//! never open, openings trickled a byte at a time, links that never finish their handshake,
//! links that send and never read, floods of requests, transfers declaring 100 MiB on many
//! channels), a second, well-behaved device must open a link, connect a session to the
//! profile's echo ability and have a message echoed, within [`SERVED_WITHIN`] each time. After
//! an attack from another address (the attackers come from 127.0.0.2 when the target is on
//! 127.0.0.1), that address must be let in again within [`attack::READMITTED_WITHIN`]
//! (`LIMIT-3`: a target may refuse an address that wasted openings, for a while). Each
//! attack reports that client's time during the attack against its time without it, and, when
//! the implementation writes statistics of its memory to a file ([`memory`]), its resident
//! memory before, at the peak of and after the attack. The client runs on a thread and runtime
//! of its own, so that its times are not its wait behind the attackers, who flood as fast as
//! the suite's runtime lets them.
//!
//! The suite is run by `acm conformance --target tcp://HOST:PORT --robustness`; `acm-bench
//! --only hostile` plays the same attackers at larger scales.

pub mod attack;
pub mod client;
pub mod memory;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use acm::secure::SecureConfig;
use tokio::time::Instant;

use self::attack::{Attack, Family, Field, Observed};
use self::client::{Reach, serve_once};
use self::memory::{MemorySource, Span};
use crate::report::{Case, CaseResult, Report, Verdict};

/// The longest the well-behaved client may take to be served, from dialing to its echo, while
/// an attack goes on.
pub const SERVED_WITHIN: Duration = Duration::from_secs(10);

/// How many times the client is served before each attack, for the time without it.
const IDLE_SAMPLES: usize = 3;

/// How long an attacker that reads nothing may keep its link up once it began. `LINK-13`
/// closes it three keepalive intervals (1 s, as it asks) after the target's link took its last
/// frame, which happens once the sockets' buffers on the way are full (several MiB over
/// loopback); the binding's close may then wait a while for what it still has to write (5 s
/// over TCP).
const UNREAD_LINK_LIMIT: Duration = Duration::from_secs(40);

/// A case of the suite: its id and rules, and the attack it plays.
#[derive(Debug, Clone, Copy)]
pub struct RobustnessCase {
    /// Its id, rules and title.
    pub case: Case,
    /// The attack.
    pub attack: Attack,
}

const fn case(
    id: &'static str,
    rules: &'static [&'static str],
    title: &'static str,
    family: Family,
    links: usize,
) -> RobustnessCase {
    RobustnessCase {
        case: Case::new(id, rules, title),
        attack: Attack {
            family,
            links,
            fill: 4 << 20,
            requests: 4000,
        },
    }
}

/// Every case of the suite, in the order they run.
pub fn cases() -> Vec<RobustnessCase> {
    vec![
        case(
            "robust/LIMIT-2/idle-connections",
            &["LIMIT-2", "TCP-5", "LIMIT-3"],
            "128 TCP connections that never send OPEN (twice the reference's opening budget) keep no one out",
            Family::IdleConnections,
            128,
        ),
        case(
            "robust/LIMIT-2/trickled-openings",
            &["LIMIT-2", "TCP-5", "LIMIT-3"],
            "64 connections trickling their OPEN a byte every 200 ms, reconnecting when dropped, keep no one out",
            Family::TrickledOpenings,
            64,
        ),
        case(
            "robust/LIMIT-2/stalled-handshakes",
            &["LIMIT-2", "LINK-10", "LIMIT-3"],
            "32 links opened by the binding that never send their first handshake message (or HELLO) keep no one out",
            Family::StalledHandshakes,
            32,
        ),
        case(
            "robust/LINK-13/pings-unread",
            &["LINK-13", "LINK-6"],
            "4 links sending PINGs and reading nothing are closed, and the device serves others meanwhile",
            Family::PingsUnread,
            4,
        ),
        case(
            "robust/LINK-13/messages-unread",
            &["LINK-13", "MSG-2"],
            "4 links sending messages to the echo ability and reading nothing are closed, and others are served",
            Family::MessagesUnread,
            4,
        ),
        case(
            "robust/LINK-13/data-unread",
            &["LINK-13", "LIMIT-1"],
            "2 links sending 256 KiB transfers to the echo ability and reading nothing are closed, and others are served",
            Family::DataUnread,
            2,
        ),
        case(
            "robust/SESS-5/request-flood-one-link",
            &["SESS-5", "LINK-13"],
            "4000 requests no app answers, on one link, expire while others are served",
            Family::RequestFlood,
            1,
        ),
        case(
            "robust/SESS-5/request-flood-ten-links",
            &["SESS-5", "LINK-13"],
            "10 links × 4000 requests no app answers expire while others are served",
            Family::RequestFlood,
            10,
        ),
        case(
            "robust/LIMIT-1/large-declarations",
            &["LIMIT-1", "DATA-7"],
            "8 links × 4 sessions each begin a transfer declaring 100 MiB and never finish it; others are served",
            Family::LargeDeclarations,
            8,
        ),
    ]
}

/// The well-behaved client's service around one attack.
#[derive(Debug, Clone)]
pub struct Served {
    /// The case.
    pub case: Case,
    /// The attack.
    pub attack: Attack,
    /// The client's times without the attack.
    pub idle: Vec<Duration>,
    /// Its times, or why it was not served, during the attack.
    pub attacked: Vec<Result<Duration, String>>,
    /// The implementation's memory around the attack, if it reports it.
    pub memory: Option<Span>,
    /// What the attackers saw.
    pub observed: Observed,
    /// For attackers from another address, how soon after the attack that address was let in
    /// again, or why not (`LIMIT-3`).
    pub readmitted: Option<Result<Duration, String>>,
}

/// The `q`-quantile (0 to 1) of `times`, by the nearest rank.
pub fn quantile(times: &[Duration], q: f64) -> Option<Duration> {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let last = sorted.len().checked_sub(1)?;
    let rank = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(rank.min(last)).copied()
}

impl Served {
    /// The times of the attempts that were served.
    pub fn attacked_times(&self) -> Vec<Duration> {
        self.attacked
            .iter()
            .filter_map(|r| r.clone().ok())
            .collect()
    }

    /// The verdict: served every time within [`SERVED_WITHIN`], the attackers that read
    /// nothing closed (`LINK-13`), and the address of attackers from elsewhere let in again
    /// once the attack stopped (`LIMIT-3`).
    pub fn verdict(&self) -> Verdict {
        if let Some(failed) = self.attacked.iter().find_map(|r| r.as_ref().err()) {
            let failures = self.attacked.iter().filter(|r| r.is_err()).count();
            return Verdict::fail(
                format!("a well-behaved device served within {SERVED_WITHIN:?} during the attack"),
                format!(
                    "{failures} of {} attempts failed, the first: {failed}",
                    self.attacked.len()
                ),
            );
        }
        if let Some(slow) = self
            .attacked_times()
            .into_iter()
            .find(|t| *t > SERVED_WITHIN)
        {
            return Verdict::fail(
                format!("a well-behaved device served within {SERVED_WITHIN:?} during the attack"),
                format!("one attempt took {slow:?}"),
            );
        }
        if self.attacked.is_empty() {
            return Verdict::fail("the well-behaved device tried during the attack", "no try");
        }
        if self.attack.family.reads_nothing() {
            let observed = &self.observed;
            let closed = observed
                .ended
                .iter()
                .filter(|t| **t <= UNREAD_LINK_LIMIT)
                .count();
            if closed < observed.began || observed.began == 0 {
                return Verdict::fail(
                    format!(
                        "every attacker that reads nothing closed within {UNREAD_LINK_LIMIT:?} (LINK-13)"
                    ),
                    format!(
                        "{} of {} links stayed up longer ({} could not begin)",
                        observed.began.saturating_sub(closed),
                        observed.began,
                        observed.refused
                    ),
                );
            }
        }
        if let Some(Err(why)) = &self.readmitted {
            return Verdict::fail(
                format!(
                    "the attackers' address let in again within {:?} of the attack's end (LIMIT-3)",
                    attack::READMITTED_WITHIN
                ),
                why.clone(),
            );
        }
        Verdict::Pass
    }

    /// One line for a table: the attack, the client's times idle and under attack, the
    /// implementation's memory.
    pub fn line(&self) -> String {
        let ms = |t: Option<Duration>| {
            t.map_or_else(
                || "-".into(),
                |t| format!("{:.1}", t.as_secs_f64() * 1000.0),
            )
        };
        let attacked = self.attacked_times();
        let mut line = format!(
            "{:<42} {:>5} {:>9} {:>9} {:>9} {:>5}/{:<3}",
            self.case.id,
            self.attack.links,
            ms(quantile(&self.idle, 0.5)),
            ms(quantile(&attacked, 0.5)),
            ms(attacked.iter().max().copied()),
            attacked.len(),
            self.attacked.len(),
        );
        match self.memory {
            Some(span) => {
                let _ = write!(
                    line,
                    " {:>7.1} {:>7.1} {:>7.1}",
                    span.before_kib as f64 / 1024.0,
                    span.peak_kib as f64 / 1024.0,
                    span.after_kib as f64 / 1024.0
                );
            }
            None => line.push_str("       -       -       -"),
        }
        line
    }

    /// The heading of [`Served::line`]'s table.
    pub fn heading() -> String {
        format!(
            "{:<42} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7}",
            "attack (times in ms, target RSS in MiB)",
            "links",
            "idle p50",
            "atk p50",
            "atk max",
            "served",
            "rss0",
            "peak",
            "after"
        )
    }
}

/// What the suite needs to run.
pub struct RobustnessConfig {
    /// Where the attackers and the client reach the implementation.
    pub field: Field,
    /// Where the implementation's memory statistics are, if it writes them.
    pub memory: Option<MemorySource>,
    /// Only the cases whose id contains this.
    pub filter: String,
}

impl Field {
    /// The implementation at `addr`, whose device id one link opened and closed tells; with
    /// `security`, every link runs the secure layer as that identity.
    pub async fn discover(
        addr: SocketAddr,
        security: Option<SecureConfig>,
    ) -> Result<Self, String> {
        let client =
            acm_transport::DeviceId::new("acm-robustness-client").map_err(|e| e.to_string())?;
        let probe = crate::wire::TcpTarget::connect(addr, client, true, None)
            .await
            .map_err(|e| format!("cannot reach tcp://{addr}: {e}"))?;
        Ok(Self {
            addr,
            iut: crate::wire::WireTarget::device_id(&probe),
            security,
        })
    }

    /// The well-behaved client.
    pub fn client(&self) -> Result<Reach, String> {
        client::reach(
            self.addr,
            &self.iut,
            "acm-robustness-client",
            self.security.clone(),
        )
    }
}

/// Serves the client once, for at most [`SERVED_WITHIN`] and a margin.
async fn try_serve(client: &Reach, service: &str) -> Result<Duration, String> {
    match tokio::time::timeout(SERVED_WITHIN * 2, serve_once(client, service)).await {
        Ok(result) => result,
        Err(_) => Err(format!("not served within {:?}", SERVED_WITHIN * 2)),
    }
}

/// What the client's thread is asked: a service to be served with, and where the time goes.
type ServeAsk = (
    String,
    tokio::sync::oneshot::Sender<Result<Duration, String>>,
);

/// The well-behaved client on a thread and runtime of its own, so that its times are the
/// implementation's, not its wait behind the attackers' tasks on the suite's runtime (which
/// flood as fast as that runtime lets them). It ends with the value.
pub struct ClientThread {
    asks: tokio::sync::mpsc::UnboundedSender<ServeAsk>,
}

impl ClientThread {
    /// Starts the thread of `client`.
    pub fn start(client: Reach) -> Self {
        let (asks, mut asked) = tokio::sync::mpsc::unbounded_channel::<ServeAsk>();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                while let Some((service, answer)) = asked.recv().await {
                    let _ = answer.send(try_serve(&client, &service).await);
                }
            });
        });
        Self { asks }
    }

    /// Serves the client once with `service` (see [`client::serve_once`]), for at most
    /// [`SERVED_WITHIN`] and a margin.
    pub async fn serve(&self, service: String) -> Result<Duration, String> {
        let ended = || "the client's thread ended".to_string();
        let (answer, served) = tokio::sync::oneshot::channel();
        self.asks.send((service, answer)).map_err(|_| ended())?;
        served.await.unwrap_or_else(|_| Err(ended()))
    }
}

/// Plays `attack` against the implementation at `field` and measures the client around it:
/// three times before it, then over [`Family::measured_for`] of the attack (three
/// times at least), then lets the implementation settle.
pub async fn play(field: &Field, memory: Option<&MemorySource>, robust: &RobustnessCase) -> Served {
    let client = match field.client() {
        Ok(client) => ClientThread::start(client),
        Err(why) => {
            return Served {
                case: robust.case,
                attack: robust.attack,
                idle: Vec::new(),
                attacked: vec![Err(why)],
                memory: None,
                observed: Observed::default(),
                readmitted: None,
            };
        }
    };
    let mut idle = Vec::new();
    for n in 0..IDLE_SAMPLES {
        if let Ok(time) = client.serve(format!("robust-idle-{n}")).await {
            idle.push(time);
        }
    }
    let watch = memory.map(MemorySource::watch);
    let running = attack::start(field, robust.attack).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let began = Instant::now();
    let mut attacked = Vec::new();
    let family = robust.attack.family;
    let all_closed = |observed: &Observed| {
        family.reads_nothing() && observed.began > 0 && observed.ended.len() >= observed.began
    };
    while attacked.len() < 3
        || (began.elapsed() < family.measured_for() && !all_closed(&running.observed()))
    {
        let service = format!("robust-{}", attacked.len());
        attacked.push(client.serve(service).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let observed = running.stop().await;
    let readmitted = if family.from_elsewhere() {
        Some(attack::readmitted(field.addr).await)
    } else {
        None
    };
    let memory = watch.and_then(memory::Watch::finish);
    // Let the implementation drop what the attackers left before the next case.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Served {
        case: robust.case,
        attack: robust.attack,
        idle,
        attacked,
        memory,
        observed,
        readmitted,
    }
}

/// Runs the suite's cases whose id contains the filter, calling `progress` after each.
pub async fn run_robustness_suite(
    config: &RobustnessConfig,
    mut progress: impl FnMut(&CaseResult, &Served),
) -> (Report, Vec<Served>) {
    let mut report = Report::new(format!(
        "{} at tcp://{} (robustness)",
        config.field.iut, config.field.addr
    ));
    let mut rows = Vec::new();
    for robust in cases()
        .iter()
        .filter(|c| c.case.id.contains(config.filter.as_str()))
    {
        let started = Instant::now();
        let served = play(&config.field, config.memory.as_ref(), robust).await;
        let result = CaseResult {
            case: robust.case,
            verdict: served.verdict(),
            elapsed: started.elapsed(),
            reproduce: None,
            logs: String::new(),
        };
        progress(&result, &served);
        report.results.push(result);
        rows.push(served);
    }
    (report, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_are_unique_and_cite_rules_of_the_spec() {
        let all = cases();
        let mut ids: Vec<&str> = all.iter().map(|c| c.case.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        for robust in &all {
            for rule in robust.case.rules {
                assert!(
                    crate::rules::text(rule).is_some(),
                    "{rule} is not in SPEC.md"
                );
            }
        }
    }

    #[test]
    fn an_attackers_address_not_let_in_again_fails_the_case() {
        let stalled = cases()
            .into_iter()
            .find(|c| c.attack.family == Family::StalledHandshakes)
            .expect("the stalled-handshakes case");
        assert!(stalled.case.rules.contains(&"LIMIT-3"));
        let served = |readmitted| Served {
            case: stalled.case,
            attack: stalled.attack,
            idle: vec![Duration::from_millis(2)],
            attacked: vec![Ok(Duration::from_millis(3)); 3],
            memory: None,
            observed: Observed::default(),
            readmitted,
        };
        assert_eq!(
            served(Some(Ok(Duration::from_millis(40)))).verdict(),
            Verdict::Pass
        );
        assert_eq!(served(None).verdict(), Verdict::Pass);
        let refused = served(Some(Err("no OPEN within 2 s".into()))).verdict();
        assert!(
            matches!(&refused, Verdict::Fail { expected, .. } if expected.contains("LIMIT-3")),
            "{refused:?}"
        );
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let ms = |n| Duration::from_millis(n);
        let times = [ms(5), ms(1), ms(3), ms(2), ms(4)];
        assert_eq!(quantile(&times, 0.5), Some(ms(3)));
        assert_eq!(quantile(&times, 0.99), Some(ms(5)));
        assert_eq!(quantile(&times, 0.0), Some(ms(1)));
        assert_eq!(quantile(&[], 0.5), None);
    }
}

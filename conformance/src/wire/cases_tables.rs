//! Families of cases made by construction from tables: each field of a request at its limit
//! and one past it, each field of HELLO at its limit and one past it, options that must reach
//! the app, tokens of refused requests, characters that are or are not control characters.

use acm_wire::Control;
use acm_wire::pb::{self, ConnectErrorCode, LinkCloseReason};
use bytes::Bytes;

use super::cases_fields::ask_edited;
use super::matrix::Family;
use super::peer::{Peer, Step, accepted, channel_token, rejected_with};
use super::target::WireTarget;
use super::{Needs, WireCase};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    let mut all = request_limit_cases();
    all.extend(hello_limit_cases());
    all.extend(option_cases());
    all.extend(token_cases());
    all.extend(character_cases());
    all
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// A field of a request, its longest valid length, and what a request with a value of that
/// length gets.
struct NameLimit {
    field: &'static str,
    max: usize,
    at_limit: ConnectOutcome,
    edit: fn(&mut pb::ConnectRequest, String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnectOutcome {
    Accepted,
    NoHandler,
}

fn source(r: &mut pb::ConnectRequest) -> &mut pb::PeerInfo {
    r.source.get_or_insert_with(Default::default)
}

fn target(r: &mut pb::ConnectRequest) -> &mut pb::PeerInfo {
    r.target.get_or_insert_with(Default::default)
}

fn parameter(r: &mut pb::ConnectRequest, key: String, value: String) {
    r.options
        .get_or_insert_with(Default::default)
        .parameters
        .insert(key, value);
}

const NAME_LIMITS: &[NameLimit] = &[
    NameLimit {
        field: "source.bundle_name",
        max: 1023,
        at_limit: ConnectOutcome::Accepted,
        edit: |r, v| source(r).bundle_name = v,
    },
    NameLimit {
        field: "source.module_name",
        max: 1023,
        at_limit: ConnectOutcome::Accepted,
        edit: |r, v| source(r).module_name = v,
    },
    NameLimit {
        field: "source.ability_name",
        max: 1023,
        at_limit: ConnectOutcome::Accepted,
        edit: |r, v| source(r).ability_name = v,
    },
    NameLimit {
        field: "source.service_name",
        max: 256,
        at_limit: ConnectOutcome::Accepted,
        edit: |r, v| source(r).service_name = v,
    },
    NameLimit {
        field: "target.bundle_name",
        max: 1023,
        at_limit: ConnectOutcome::NoHandler,
        edit: |r, v| target(r).bundle_name = v,
    },
    NameLimit {
        field: "target.module_name",
        max: 1023,
        at_limit: ConnectOutcome::NoHandler,
        edit: |r, v| target(r).module_name = v,
    },
    NameLimit {
        field: "target.ability_name",
        max: 1023,
        at_limit: ConnectOutcome::NoHandler,
        edit: |r, v| target(r).ability_name = v,
    },
    NameLimit {
        field: "target.service_name",
        max: 256,
        at_limit: ConnectOutcome::Accepted,
        edit: |r, v| target(r).service_name = v,
    },
    NameLimit {
        field: "options.parameters key",
        max: 1023,
        at_limit: ConnectOutcome::Accepted,
        edit: |r, v| parameter(r, v, "value".into()),
    },
    NameLimit {
        field: "options.parameters value",
        max: 1023,
        at_limit: ConnectOutcome::Accepted,
        edit: |r, v| parameter(r, "key".into(), v),
    },
];

/// The cases of [`NAME_LIMITS`]: each field at its limit, and one byte past it.
fn request_limit_cases() -> Vec<WireCase> {
    Family {
        rules: &["SESS-2"],
        needs: Needs::Nothing,
        run: |target, param| Box::pin(request_limit(target, param)),
    }
    .cases(
        NAME_LIMITS.iter().flat_map(|limit| {
        let slug = limit.field.replace(['.', ' '], "-");
        [
            (
                format!("wire/SESS-2/{slug}-at-{}-bytes", limit.max),
                format!("a request whose {} is {} bytes, its limit, is valid", limit.field, limit.max),
            ),
            (
                format!("wire/SESS-2/{slug}-at-{}-bytes", limit.max + 1),
                format!(
                    "a request whose {} is {} bytes, one past its limit, is rejected with SYSTEM_INTERNAL_ERROR",
                    limit.field,
                    limit.max + 1
                ),
            ),
        ]
    }),
        |i| (i % 2 == 1).then_some("SESS-2"),
    )
}

async fn request_limit(t: &dyn WireTarget, param: u32) -> Step<()> {
    let Some(limit) = NAME_LIMITS.get(param as usize / 2) else {
        return fail("a known limit", param.to_string());
    };
    let past = param % 2 == 1;
    let len = if past { limit.max + 1 } else { limit.max };
    let mut peer = Peer::up(t).await?;
    let token = channel_token(0x73, peer.peek_channel());
    let mut request = peer.request(profile::ECHO, "names", token);
    (limit.edit)(&mut request, "n".repeat(len));
    let (_, response) = peer.ask(request).await?;
    match (past, limit.at_limit) {
        (true, _) => rejected_with(&response, ConnectErrorCode::SystemInternalError).map(|_| ()),
        (false, ConnectOutcome::Accepted) => accepted(&response),
        (false, ConnectOutcome::NoHandler) => {
            rejected_with(&response, ConnectErrorCode::PeerAbilityNoOncollaborate).map(|_| ())
        }
    }
}

/// A field of HELLO, a value at its limit and one past it.
struct HelloLimit {
    name: &'static str,
    at: &'static str,
    past: &'static str,
    set: fn(&mut pb::Hello, bool),
}

const HELLO_LIMITS: &[HelloLimit] = &[
    HelloLimit {
        name: "max-frame-size",
        at: "128",
        past: "127",
        set: |h, past| h.max_frame_size = if past { 127 } else { 128 },
    },
    HelloLimit {
        name: "max-frame-size",
        at: "16777227",
        past: "16777228",
        set: |h, past| h.max_frame_size = if past { 16_777_228 } else { 16_777_227 },
    },
    HelloLimit {
        name: "keepalive",
        at: "1000-ms",
        past: "999-ms",
        set: |h, past| h.keepalive_interval_ms = if past { 999 } else { 1_000 },
    },
    HelloLimit {
        name: "keepalive",
        at: "600000-ms",
        past: "600001-ms",
        set: |h, past| h.keepalive_interval_ms = if past { 600_001 } else { 600_000 },
    },
    HelloLimit {
        name: "nonce",
        at: "16-bytes",
        past: "15-bytes",
        set: |h, past| h.nonce = Bytes::from(vec![7; if past { 15 } else { 16 }]),
    },
    HelloLimit {
        name: "nonce",
        at: "16-bytes",
        past: "17-bytes",
        set: |h, past| h.nonce = Bytes::from(vec![7; if past { 17 } else { 16 }]),
    },
    HelloLimit {
        name: "max-version",
        at: "255",
        past: "256",
        set: |h, past| h.max_version = if past { 256 } else { 255 },
    },
    HelloLimit {
        name: "min-version",
        at: "1",
        past: "0",
        set: |h, past| h.min_version = u32::from(!past),
    },
    HelloLimit {
        name: "max-data-size",
        at: "1",
        past: "0",
        set: |h, past| h.max_data_size = u64::from(!past),
    },
];

/// The cases of [`HELLO_LIMITS`]: each field at its limit (the link comes up and works) and
/// one past it (the link closes with PROTOCOL_ERROR).
fn hello_limit_cases() -> Vec<WireCase> {
    Family {
        rules: &["LINK-3"],
        needs: Needs::Nothing,
        run: |target, param| Box::pin(hello_limit(target, param)),
    }
    .cases(
        HELLO_LIMITS.iter().flat_map(|limit| {
        [
            (
                format!("wire/LINK-3/hello-{}-at-{}", limit.name, limit.at),
                format!(
                    "a HELLO whose {} is {}, its limit, brings the link up",
                    limit.name, limit.at
                ),
            ),
            (
                format!("wire/LINK-3/hello-{}-at-{}", limit.name, limit.past),
                format!(
                    "a HELLO whose {} is {}, one past its limit, closes the link with PROTOCOL_ERROR",
                    limit.name, limit.past
                ),
            ),
        ]
    }),
        |i| (i % 2 == 1).then_some("LINK-3"),
    )
}

async fn hello_limit(t: &dyn WireTarget, param: u32) -> Step<()> {
    let Some(limit) = HELLO_LIMITS.get(param as usize / 2) else {
        return fail("a known limit", param.to_string());
    };
    let past = param % 2 == 1;
    if past {
        let mut peer = Peer::open(t).await?;
        let mut hello = peer.default_hello();
        (limit.set)(&mut hello, true);
        peer.send(&Control::Hello(hello), 0).await?;
        return peer.expect_link_close(LinkCloseReason::ProtocolError).await;
    }
    let mut peer = Peer::up_with(t, |h| (limit.set)(h, false)).await?;
    peer.expect_alive().await?;
    peer.open_echo("hello-limit").await.map(|_| ())
}

/// Options a request carries, and the options the profile's connect-back must carry back: as
/// its app received them (`CTRL-3` reads an unknown `start_options` as `START_IN_FOREGROUND`).
struct Options {
    name: &'static str,
    sent: fn() -> pb::ConnectOptions,
    back: fn() -> pb::ConnectOptions,
}

fn with(need: Option<bool>, start: i32, parameters: &[(&str, &str)]) -> pb::ConnectOptions {
    pb::ConnectOptions {
        need_send_data: need,
        start_options: start,
        parameters: parameters
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    }
}

const OPTIONS: &[Options] = &[
    Options {
        name: "need-send-data-and-parameters",
        sent: || with(Some(true), 1, &[("a", "1"), ("b", "two")]),
        back: || with(Some(true), 1, &[("a", "1"), ("b", "two")]),
    },
    Options {
        name: "need-send-data-false-and-no-start-options",
        sent: || with(Some(false), 0, &[]),
        back: || with(Some(false), 0, &[]),
    },
    Options {
        name: "unknown-start-options",
        sent: || with(None, 7, &[]),
        back: || with(None, 1, &[]),
    },
    Options {
        name: "parameter-value-with-a-line-break",
        sent: || with(None, 0, &[("text", "line\nbreak\u{7f}")]),
        back: || with(None, 0, &[("text", "line\nbreak\u{7f}")]),
    },
];

/// The cases of [`OPTIONS`]: each set of options comes back in the connect-back.
fn option_cases() -> Vec<WireCase> {
    Family {
        rules: &["SESS-3", "CTRL-3"],
        needs: Needs::Data,
        run: |target, param| Box::pin(options_come_back(target, param)),
    }
    .cases(OPTIONS.iter().map(|o| {
        (
            format!("wire/SESS-3/options-come-back-{}", o.name),
            format!(
                "the options of a request ({}) reach the app: they come back in the profile's connect-back",
                o.name.replace('-', " ")
            ),
        )
    }), |_| None)
}

async fn options_come_back(t: &dyn WireTarget, param: u32) -> Step<()> {
    let Some(options) = OPTIONS.get(param as usize) else {
        return fail("known options", param.to_string());
    };
    let mut peer = Peer::up(t).await?;
    let (origin, response) = ask_edited(&mut peer, profile::ECHO, "options", |r| {
        r.options = Some((options.sent)());
    })
    .await?;
    accepted(&response)?;
    let (_, theirs) = peer.request_back(origin, "back").await?;
    let got = theirs.options.unwrap_or_default();
    if got != (options.back)() {
        return fail(format!("{:?}", (options.back)()), format!("{got:?}"));
    }
    Ok(())
}

/// Request tokens of every wrong length: the answer carries 16 zero bytes (`SESS-4`); and a
/// right one in an otherwise invalid request: the answer carries it.
const TOKENS: &[(&str, usize)] = &[
    ("absent", 0),
    ("8-bytes", 8),
    ("15-bytes", 15),
    ("17-bytes", 17),
    ("20-bytes", 20),
    ("16-bytes-in-an-invalid-request", 16),
];

fn token_cases() -> Vec<WireCase> {
    Family {
        rules: &["SESS-4", "SESS-2"],
        needs: Needs::Nothing,
        run: |target, param| Box::pin(token_of_refusal(target, param)),
    }
    .cases(
        TOKENS.iter().map(|(name, _)| {
            (
                format!("wire/SESS-4/token-of-a-refusal-{name}"),
                format!(
                    "an invalid request with a token {} is refused with the token SESS-4 gives",
                    name.replace('-', " ")
                ),
            )
        }),
        |_| Some("SESS-2"),
    )
}

async fn token_of_refusal(t: &dyn WireTarget, param: u32) -> Step<()> {
    let Some((_, len)) = TOKENS.get(param as usize) else {
        return fail("a known token", param.to_string());
    };
    let token = Bytes::from(vec![0xC7; *len]);
    let mut peer = Peer::up(t).await?;
    let (_, response) = ask_edited(&mut peer, profile::ECHO, "tokens", |r| {
        r.token = token.clone();
        if *len == 16
            && let Some(source) = r.source.as_mut()
        {
            source.bundle_name.clear();
        }
    })
    .await?;
    rejected_with(&response, ConnectErrorCode::SystemInternalError)?;
    let wanted = if *len == 16 {
        token
    } else {
        Bytes::from(vec![0; 16])
    };
    if response.token != wanted {
        return fail(
            format!("token {wanted:02x?}"),
            format!("{:02x?}", response.token),
        );
    }
    Ok(())
}

/// Characters in a name, whether they are control characters (section 1), and whether the name
/// is the character alone (no printable ASCII around it) rather than inside `org.acm?suite`.
const CHARACTERS: &[(&str, char, bool, bool)] = &[
    ("u007f-delete", '\u{7f}', true, false),
    ("u0085-next-line", '\u{85}', true, false),
    ("u2028-line-separator", '\u{2028}', false, false),
    ("u00a0-no-break-space", '\u{a0}', false, false),
    ("u0007-bell-alone", '\u{7}', true, true),
];

fn character_cases() -> Vec<WireCase> {
    Family {
        rules: &["SESS-2"],
        needs: Needs::Nothing,
        run: |target, param| Box::pin(character(target, param)),
    }
    .cases(
        CHARACTERS.iter().map(|(name, _, control, _)| {
            let verdict = if *control {
                "is a control character: the request is rejected"
            } else {
                "is not a control character: the request is accepted"
            };
            (
                format!("wire/SESS-2/bundle-name-with-{name}"),
                format!("a source bundle name holding {name} {verdict}"),
            )
        }),
        |i| {
            CHARACTERS
                .get(i)
                .is_some_and(|(_, _, control, _)| *control)
                .then_some("SESS-2")
        },
    )
}

async fn character(t: &dyn WireTarget, param: u32) -> Step<()> {
    let Some((_, c, control, alone)) = CHARACTERS.get(param as usize) else {
        return fail("a known character", param.to_string());
    };
    let mut peer = Peer::up(t).await?;
    let (_, response) = ask_edited(&mut peer, profile::ECHO, "characters", |r| {
        if let Some(source) = r.source.as_mut() {
            source.bundle_name = if *alone {
                c.to_string()
            } else {
                format!("org.acm{c}suite")
            };
        }
    })
    .await?;
    if *control {
        rejected_with(&response, ConnectErrorCode::SystemInternalError).map(|_| ())
    } else {
        accepted(&response)
    }
}

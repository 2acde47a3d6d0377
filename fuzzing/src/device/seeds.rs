//! Seed inputs for the `device` corpus.

/// An operation byte: `code` for device `d`.
const fn op(d: u8, code: u8) -> u8 {
    (d << 4) | code
}

const PHONE: u8 = 0;
const TABLET: u8 = 1;
const WATCH: u8 = 2;
const SETTLE: u8 = 3;

/// Inputs for the `device` corpus: sessions opened, used and ended over one link and two, by
/// two devices and three, with crossing requests, losses and timeouts.
pub fn seeds() -> Vec<crate::Seed> {
    // Device d dials its next device (arg 0) or the one after (arg 1).
    let dial = |d: u8, arg: u8| [op(d, 0), arg];
    // Device d creates a session with its next device (bit 0 clear) for service `service`.
    let create = |d: u8, other: u8, service: u8| [op(d, 4), other | (service << 1)];
    let connect = |d: u8, which: u8| [op(d, 5), which];
    // how: 0 reject, 1 accept with a new session, 2 accept into a session of the app's.
    let answer = |d: u8, which: u8, how: u8| [op(d, 6), which, how];
    let send = |d: u8, which: u8, what: u8| [op(d, 9), which, what];
    let advance = |by: u8| [op(0, 11), by];
    let scripts: Vec<(&str, Vec<u8>)> = vec![
        (
            "connect-accept-send-disconnect",
            [
                &[0][..],
                &dial(PHONE, 0),
                &[SETTLE],
                &create(PHONE, 0, 0),
                &connect(PHONE, 0),
                &[SETTLE],
                &answer(TABLET, 0, 1),
                &[SETTLE],
                &send(PHONE, 0, 0),
                &send(TABLET, 0, 1),
                &send(PHONE, 0, 2),
                &[SETTLE, op(PHONE, 7), 0, SETTLE],
            ]
            .concat(),
        ),
        (
            "connect-reject",
            [
                &[0][..],
                &dial(PHONE, 0),
                &[SETTLE],
                &create(PHONE, 0, 1),
                &connect(PHONE, 0),
                &[SETTLE],
                &answer(TABLET, 0, 0),
                &[SETTLE],
            ]
            .concat(),
        ),
        (
            "unanswered-requests-expire",
            [
                &[0][..],
                &dial(PHONE, 0),
                &[SETTLE],
                &create(PHONE, 0, 0),
                &create(PHONE, 0, 1),
                &connect(PHONE, 0),
                &connect(PHONE, 1),
                &[SETTLE],
                &advance(41),
                &[SETTLE],
                &advance(41),
            ]
            .concat(),
        ),
        (
            "crossing-on-one-link",
            [
                &[0][..],
                &dial(PHONE, 0),
                &[SETTLE],
                &create(PHONE, 0, 0),
                &create(TABLET, 1, 0),
                &connect(PHONE, 0),
                &connect(TABLET, 0),
                &[SETTLE],
                &answer(PHONE, 0, 1),
                &answer(TABLET, 0, 1),
                &[SETTLE],
            ]
            .concat(),
        ),
        (
            "crossing-on-two-links",
            [
                &[0][..],
                &dial(PHONE, 0),
                &dial(TABLET, 1),
                &[SETTLE],
                &create(PHONE, 0, 0),
                &create(TABLET, 1, 0),
                &connect(PHONE, 0),
                &connect(TABLET, 0),
                &[SETTLE],
                &answer(PHONE, 0, 1),
                &answer(TABLET, 0, 1),
                &[SETTLE],
                &advance(30),
                &[SETTLE],
            ]
            .concat(),
        ),
        (
            "destroyed-while-connecting",
            [
                &[0][..],
                &dial(PHONE, 0),
                &[SETTLE],
                &create(PHONE, 0, 0),
                &connect(PHONE, 0),
                &[SETTLE, op(PHONE, 8), 0],
                &answer(TABLET, 0, 1),
                &[SETTLE],
            ]
            .concat(),
        ),
        (
            "link-lost-mid-session",
            [
                &[0][..],
                &dial(PHONE, 0),
                &[SETTLE],
                &create(PHONE, 0, 0),
                &connect(PHONE, 0),
                &[SETTLE],
                &answer(TABLET, 0, 1),
                &send(PHONE, 0, 1),
                &[op(0, 1), 0, 2, op(0, 10), 0, SETTLE, op(0, 12)],
                &dial(PHONE, 0),
                &[SETTLE],
                &connect(PHONE, 0),
                &[SETTLE],
            ]
            .concat(),
        ),
        (
            "two-links-one-retires",
            [
                &[0][..],
                &dial(TABLET, 1),
                &[SETTLE],
                &create(TABLET, 1, 2),
                &connect(TABLET, 0),
                &[SETTLE],
                &answer(PHONE, 0, 1),
                &[SETTLE],
                &dial(PHONE, 0),
                &[SETTLE],
                &advance(24),
                &[op(TABLET, 7), 0, SETTLE],
                &advance(4),
                &[SETTLE, op(0, 12)],
            ]
            .concat(),
        ),
        (
            "three-devices-one-service",
            [
                &[0][..],
                &dial(PHONE, 0),
                &dial(WATCH, 1),
                &[SETTLE],
                &create(PHONE, 0, 0),
                &create(WATCH, 1, 0),
                &connect(PHONE, 0),
                &connect(WATCH, 0),
                &[SETTLE],
                &answer(TABLET, 0, 1),
                &answer(TABLET, 0, 1),
                &[SETTLE],
                &send(TABLET, 0, 0),
                &send(TABLET, 1, 0),
                &[SETTLE, op(TABLET, 8), 0, SETTLE],
            ]
            .concat(),
        ),
        (
            "few-sessions-short-keepalive",
            [
                &[3][..],
                &dial(PHONE, 0),
                &[SETTLE],
                &create(PHONE, 0, 0),
                &create(PHONE, 0, 1),
                &create(PHONE, 0, 2),
                &connect(PHONE, 0),
                &connect(PHONE, 1),
                &connect(PHONE, 2),
                &[SETTLE],
                &answer(TABLET, 0, 1),
                &[SETTLE],
                &advance(20),
                &[SETTLE],
            ]
            .concat(),
        ),
        (
            "accept-into-a-session-of-the-app",
            [
                &[0][..],
                &dial(PHONE, 0),
                &[SETTLE],
                &create(PHONE, 0, 1),
                &create(TABLET, 1, 1),
                &connect(PHONE, 0),
                &[SETTLE],
                &answer(TABLET, 0, 2),
                &[SETTLE],
                &send(TABLET, 0, 2),
                &[SETTLE],
            ]
            .concat(),
        ),
    ];
    scripts
        .into_iter()
        .map(|(name, bytes)| crate::Seed {
            target: "device",
            name: name.to_string(),
            bytes,
        })
        .collect()
}

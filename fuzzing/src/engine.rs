//! The body of the `engine` fuzz target in `fuzz/`, and the seed inputs of its corpus.
//!
//! The body drives the sans-IO [`acm_engine::LinkEngine`] with a sequence of operations read
//! from the input: frames from a scripted peer (valid ones built from a few input fields, and
//! arbitrary, mutated and broken ones), the apps' calls with arguments from the input, clock
//! advances and link losses; or two engines joined by a wire that may drop, reorder, repeat or
//! corrupt frames. It panics when an invariant breaks, which a fuzzer reports as a crash. After
//! every step it checks, from outside the engine:
//!
//! * every event against what caused it: nothing is delivered that the peer did not send
//!   (whole transfers, byte for byte; each message and event as it was on the wire), a
//!   handshake ends once, no event comes for a session that has ended, `LinkClosed` comes once
//!   and last, after every session was reported ended;
//! * every call's result against an account of the link and its sessions kept by the checker;
//! * every frame sent: it decodes, obeys the header rules and the peer's frame size, is sent in
//!   the right phase of the link and the session (HELLO first, nothing after LINK_CLOSE or on a
//!   channel after DISCONNECT, split bodies whole and in one piece), and carries exactly what
//!   the app asked for;
//! * memory: the reassembly buffers stay within the configured budget, each step queues a
//!   bounded number of control frames, and queued transfers and sessions match the account;
//! * time: `poll_timeout` is no later than any deadline, `handle_timeout` does nothing before
//!   it and leaves no deadline behind, PINGs and timeouts happen when SPEC section 4 says.
//!
//! The same function runs under libFuzzer (`fuzz/fuzz_targets/engine.rs`) and, on stable Rust,
//! in the replay test (`fuzzing/tests/replay.rs`). `fuzz/README.md` gives the input layout.

mod args;
mod calls;
mod driver;
mod observer;
mod peer;
mod seeds;
mod shadow;
mod transmit;

pub use seeds::seeds;

/// The fuzz target `engine`: runs the operations of `data` and panics on any broken
/// invariant.
pub fn engine(data: &[u8]) {
    driver::run(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inputs_of_every_first_bytes_pass() {
        for a in 0..=255u8 {
            engine(&[a]);
            engine(&[a, a.rotate_left(3), a]);
        }
    }
}

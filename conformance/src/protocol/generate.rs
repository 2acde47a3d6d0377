//! The model as proptest-state-machine's reference state machine: which transitions can come
//! next, and which stay valid when a failing sequence shrinks.

use std::marker::PhantomData;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest_state_machine::ReferenceStateMachine;

use super::implementation::{LinkFault, Side};
use super::model::{MAX_MESSAGE, Model, SessState};
use super::profile::Property;
use super::transition::{AcceptInto, Handle, Transition};

/// The reference state machine of property `P`.
pub struct ModelMachine<P>(PhantomData<P>);

/// How long time steps are, in ms: around the timers of SESS-5 and LINK-6.
const ADVANCES: [u64; 6] = [1_500, 5_000, 10_500, 21_000, 35_000, 61_000];

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::A), Just(Side::B)]
}

/// Mostly services the app keeps requests of; now and then the one it refuses.
fn service() -> impl Strategy<Value = usize> {
    prop_oneof![5 => Just(0usize), 4 => Just(1usize), 1 => Just(2usize)]
}

fn message_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(0usize),
        10 => 1usize..=40,
        4 => 41usize..=600,
        3 => (MAX_MESSAGE - 8)..=MAX_MESSAGE,
        1 => Just(MAX_MESSAGE + 1),
    ]
}

fn data_len(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(0usize),
        6 => 1usize..=64,
        4 => 65usize..=1_500,
        2 => 1_500usize..=max.max(1_500),
    ]
}

/// Mostly the sessions a call suits, often any the apps still hold, now and then a destroyed
/// one (`all` is never empty).
fn session(suited: &[Handle], live: &[Handle], all: &[Handle]) -> BoxedStrategy<Handle> {
    let arms: Vec<(u32, BoxedStrategy<Handle>)> = [(12, suited), (3, live), (1, all)]
        .into_iter()
        .filter(|(_, handles)| !handles.is_empty())
        .map(|(weight, handles)| (weight, select(handles.to_vec()).boxed()))
        .collect();
    Union::new_weighted(arms).boxed()
}

impl<P: Property> ReferenceStateMachine for ModelMachine<P> {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::new(P::PROFILE)).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        let p = state.profile;
        let fresh = state.next_id;
        let id = u64::from(fresh);
        let mut arms: Vec<(u32, BoxedStrategy<Transition>)> = Vec::new();
        let ghost_percent = f64::from(p.ghost_percent) / 100.0;
        arms.push((
            p.create.max(1),
            (side(), service(), proptest::bool::weighted(ghost_percent))
                .prop_map(move |(side, service, ghost)| Transition::Create {
                    side,
                    handle: fresh,
                    service,
                    ghost,
                })
                .boxed(),
        ));
        let all: Vec<Handle> = state.sessions.keys().copied().collect();
        let live = state.live_sessions();
        let in_state = |connected: bool| -> Vec<Handle> {
            state
                .sessions
                .iter()
                .filter(|(_, s)| {
                    !s.destroyed && matches!(s.state, SessState::Connected(_)) == connected
                })
                .map(|(h, _)| *h)
                .collect()
        };
        if !all.is_empty() {
            let idle = session(&in_state(false), &live, &all);
            let pick = session(&in_state(true), &live, &all);
            let max_data = p.max_data;
            arms.extend([
                (
                    p.connect,
                    idle.clone()
                        .prop_map(move |handle| Transition::Connect {
                            handle,
                            chan: fresh,
                        })
                        .boxed(),
                ),
                (
                    p.message,
                    (pick.clone(), message_len())
                        .prop_map(move |(handle, len)| Transition::SendMessage { handle, id, len })
                        .boxed(),
                ),
                (
                    p.data,
                    (pick.clone(), data_len(max_data))
                        .prop_map(move |(handle, len)| Transition::SendData { handle, id, len })
                        .boxed(),
                ),
                (
                    p.event,
                    pick.clone()
                        .prop_map(move |handle| Transition::SendEvent { handle, id })
                        .boxed(),
                ),
                (
                    p.disconnect,
                    pick.clone()
                        .prop_map(|handle| Transition::Disconnect { handle })
                        .boxed(),
                ),
                (
                    p.destroy,
                    idle.prop_map(|handle| Transition::Destroy { handle })
                        .boxed(),
                ),
            ]);
        }
        let handed: Vec<_> = state
            .chans
            .iter()
            .filter(|(_, c)| c.handed)
            .map(|(chan, c)| (*chan, c.responder()))
            .collect();
        let pending: Vec<_> = state
            .chans
            .iter()
            .filter(|(_, c)| c.pending)
            .map(|(chan, c)| (*chan, c.responder()))
            .collect();
        let has_pending = !pending.is_empty();
        if !handed.is_empty() {
            let answered = if pending.is_empty() {
                select(handed).boxed()
            } else {
                prop_oneof![6 => select(pending), 1 => select(handed)].boxed()
            };
            let sessions: Vec<(Handle, Side)> =
                state.sessions.iter().map(|(h, s)| (*h, s.side)).collect();
            let accept = (answered.clone(), 0..4usize, select(sessions)).prop_map(
                move |((chan, responder), choice, (existing, on))| {
                    let into = if choice == 0 && on == responder {
                        AcceptInto::Existing(existing)
                    } else {
                        AcceptInto::Fresh(fresh)
                    };
                    Transition::Accept { chan, into }
                },
            );
            // A request waits for its answer only so long: answer it soon, mostly.
            let boost = if has_pending { 3 } else { 1 };
            arms.push((p.accept * boost, accept.boxed()));
            arms.push((
                p.reject,
                answered
                    .prop_map(|(chan, _)| Transition::Reject { chan })
                    .boxed(),
            ));
        }
        if let Some(link) = &state.link {
            let stalled: Vec<Side> = Side::BOTH
                .into_iter()
                .filter(|s| link.stalled[s.index()].is_some())
                .collect();
            let flowing: Vec<Side> = Side::BOTH
                .into_iter()
                .filter(|s| link.stalled[s.index()].is_none())
                .collect();
            let mut stall_arms: Vec<BoxedStrategy<Transition>> = Vec::new();
            if !flowing.is_empty() {
                stall_arms.push(
                    select(flowing)
                        .prop_map(|s| Transition::Fault(LinkFault::Stall(s)))
                        .boxed(),
                );
            }
            if !stalled.is_empty() {
                stall_arms.push(
                    select(stalled)
                        .prop_map(|s| Transition::Fault(LinkFault::Unstall(s)))
                        .boxed(),
                );
            }
            arms.push((p.stall, Union::new(stall_arms).boxed()));
            arms.extend([
                (
                    p.drop,
                    (side(), 1u64..=3)
                        .prop_map(|(s, n)| Transition::Fault(LinkFault::DropFrames(s, n)))
                        .boxed(),
                ),
                (
                    p.corrupt,
                    (side(), 1u64..=2)
                        .prop_map(|(s, n)| Transition::Fault(LinkFault::CorruptFrames(s, n)))
                        .boxed(),
                ),
            ]);
        }
        if state.link.is_some() || state.uncertain {
            let weight = if state.uncertain {
                p.lose.max(1) * 3
            } else {
                p.lose
            };
            arms.push((weight, Just(Transition::Fault(LinkFault::Lose)).boxed()));
        }
        arms.push((
            p.advance,
            select(ADVANCES.to_vec())
                .prop_map(|ms| Transition::Advance { ms })
                .boxed(),
        ));
        arms.retain(|(weight, _)| *weight > 0);
        Union::new_weighted(arms).boxed()
    }

    fn apply(state: Model, transition: &Transition) -> Model {
        state.step(transition)
    }

    fn preconditions(state: &Model, transition: &Transition) -> bool {
        let end = state.now + Model::duration(transition);
        if !state.ends_clear(end) {
            return false;
        }
        let unused = |id: u32| !state.sessions.contains_key(&id) && !state.chans.contains_key(&id);
        match transition {
            Transition::Create { handle, .. } => unused(*handle),
            Transition::Connect { handle, chan } => {
                unused(*chan)
                    && state
                        .sessions
                        .get(handle)
                        .is_some_and(|s| !state.would_cross(s.side, s.service, s.ghost))
            }
            Transition::Accept { chan, into } => {
                let Some(c) = state.chans.get(chan) else {
                    return false;
                };
                match into {
                    AcceptInto::Fresh(handle) => unused(*handle),
                    AcceptInto::Existing(handle) => state
                        .sessions
                        .get(handle)
                        .is_some_and(|s| s.side == c.responder()),
                }
            }
            Transition::Reject { chan } => state.chans.contains_key(chan),
            Transition::SendMessage { handle, .. }
            | Transition::SendData { handle, .. }
            | Transition::SendEvent { handle, .. }
            | Transition::Disconnect { handle }
            | Transition::Destroy { handle } => state.sessions.contains_key(handle),
            Transition::Fault(fault) => match (fault, &state.link) {
                (LinkFault::Stall(s), Some(link)) => link.stalled[s.index()].is_none(),
                (LinkFault::Unstall(s), Some(link)) => link.stalled[s.index()].is_some(),
                (LinkFault::DropFrames(..) | LinkFault::CorruptFrames(..), link) => link.is_some(),
                (LinkFault::Lose, _) => true,
                _ => false,
            },
            Transition::Advance { .. } => true,
        }
    }
}

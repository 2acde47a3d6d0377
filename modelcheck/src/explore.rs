//! The explorer: a breadth-first search over the model's states within the bounds, each state
//! kept as the path that reaches it and a fingerprint (see the crate docs).

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::property::{Violation, Witness};
use crate::step::Step;
use crate::world::{Bounds, World};

/// A path to a broken property: the steps, one a line when printed, that replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// What broke.
    pub violation: Violation,
    /// The steps the explorer chose; the property broke at the last of them, or, if `settled`
    /// is not empty, once the network was quiet.
    pub steps: Vec<Step>,
    /// The deliveries and timers that quieted the network after `steps`, if the property broke
    /// there.
    pub settled: Vec<Step>,
}

impl Counterexample {
    /// The number of steps the explorer chose (the depth of the state that broke the
    /// property).
    pub fn depth(&self) -> usize {
        self.steps.len()
    }

    /// Every step, the quieting ones after the others: what [`crate::replay`] takes.
    pub fn all_steps(&self) -> Vec<Step> {
        self.steps.iter().chain(&self.settled).copied().collect()
    }
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "// {}", self.violation)?;
        writeln!(f, "// at depth {}", self.depth())?;
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        if !self.settled.is_empty() {
            writeln!(f, "// then the network quiets:")?;
            for step in &self.settled {
                writeln!(f, "{step}")?;
            }
        }
        Ok(())
    }
}

/// What a run explored.
#[derive(Debug, Clone)]
pub struct Report {
    /// The bounds.
    pub bounds: Bounds,
    /// Distinct states found (by fingerprint), the first one included.
    pub states: usize,
    /// Steps taken from the states expanded.
    pub transitions: usize,
    /// New states at each depth, from 0.
    pub levels: Vec<usize>,
    /// How long it took.
    pub elapsed: Duration,
    /// The first broken property found, at the least depth.
    pub counterexample: Option<Counterexample>,
    /// The situations reached, the quieting of the network included.
    pub witnessed: Vec<Witness>,
}

impl Report {
    /// The deepest level that has states.
    pub fn depth(&self) -> usize {
        self.levels.len().saturating_sub(1)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.bounds;
        writeln!(
            f,
            "bounds: {} devices, depth {}, {} session(s) each, {} send(s), {} loss(es), {} advance(s), hostile {}, hellos {}, mutant {:?}",
            b.devices,
            b.depth,
            b.sessions,
            b.sends,
            b.losses,
            b.advances,
            b.hostile,
            b.hellos,
            b.mutation
        )?;
        writeln!(
            f,
            "explored: {} states, {} transitions, depth {}, {:.1} s ({:.0} states/s)",
            self.states,
            self.transitions,
            self.depth(),
            self.elapsed.as_secs_f64(),
            self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )?;
        writeln!(f, "new states by depth: {:?}", self.levels)?;
        let missed: Vec<Witness> = Witness::ALL
            .into_iter()
            .filter(|w| !self.witnessed.contains(w))
            .collect();
        writeln!(f, "reached: {:?}", self.witnessed)?;
        writeln!(f, "not reached: {missed:?}")?;
        match &self.counterexample {
            None => writeln!(f, "every property holds within the bounds"),
            Some(c) => write!(f, "PROPERTY BROKEN\n{c}"),
        }
    }
}

struct Node {
    parent: u32,
    step: Step,
    fingerprint: u64,
}

const ROOT: u32 = u32::MAX;

fn path(arena: &[Node], mut at: u32) -> Vec<Step> {
    let mut steps = Vec::new();
    while at != ROOT {
        let node = &arena[at as usize];
        steps.push(node.step);
        at = node.parent;
    }
    steps.reverse();
    steps
}

/// Explores every state within `bounds` breadth first on `threads` threads, checking every
/// property at every state, until the depth bound or the first broken property.
/// `progress` is told of each level as it is done.
pub fn explore(bounds: Bounds, threads: usize, mut progress: impl FnMut(&Report)) -> Report {
    let start = Instant::now();
    let root = World::new(bounds);
    let mut visited: HashSet<u64> = HashSet::new();
    visited.insert(root.fingerprint());
    let mut arena: Vec<Node> = Vec::new();
    let mut frontier: Vec<u32> = vec![ROOT];
    let mut report = Report {
        bounds,
        states: 1,
        transitions: 0,
        levels: vec![1],
        elapsed: Duration::ZERO,
        counterexample: None,
        witnessed: Vec::new(),
    };
    let witnessed = AtomicU32::new(0);
    let root_fingerprint = root.fingerprint();
    drop(root);
    for _ in 0..bounds.depth {
        if frontier.is_empty() {
            break;
        }
        let next = Mutex::new(Vec::<Node>::new());
        let shared = Mutex::new(visited);
        let found = Mutex::new(None::<Counterexample>);
        let stop = AtomicBool::new(false);
        let cursor = AtomicUsize::new(0);
        let transitions = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..threads.max(1) {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = cursor.fetch_add(1, Ordering::Relaxed);
                        let Some(&parent) = frontier.get(i) else {
                            break;
                        };
                        let steps = path(&arena, parent);
                        let expected = match parent {
                            ROOT => root_fingerprint,
                            at => arena[at as usize].fingerprint,
                        };
                        let build = || match World::replay_path(bounds, &steps, false) {
                            Ok(world) => world,
                            Err((_, v)) => panic!("a stored path no longer replays: {v}"),
                        };
                        let world = build();
                        assert_eq!(
                            world.fingerprint(),
                            expected,
                            "the model is not deterministic: a path replays to another state"
                        );
                        let enabled = world.enabled();
                        let mut spare = Some(world);
                        for step in enabled {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            transitions.fetch_add(1, Ordering::Relaxed);
                            let mut child = spare.take().unwrap_or_else(build);
                            let mut broke = child.apply(step).err().map(|v| (v, Vec::new()));
                            witnessed.fetch_or(child.witnessed, Ordering::Relaxed);
                            if broke.is_none() {
                                let fingerprint = child.fingerprint();
                                let new = shared
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(fingerprint);
                                if !new {
                                    continue;
                                }
                                next.lock().unwrap_or_else(|e| e.into_inner()).push(Node {
                                    parent,
                                    step,
                                    fingerprint,
                                });
                                if bounds.settle {
                                    let mut trail = Vec::new();
                                    broke = child.settle(&mut trail).err().map(|v| (v, trail));
                                    witnessed.fetch_or(child.witnessed, Ordering::Relaxed);
                                }
                            }
                            if let Some((violation, settled)) = broke {
                                let mut steps = steps.clone();
                                steps.push(step);
                                let mut slot = found.lock().unwrap_or_else(|e| e.into_inner());
                                let better = slot.as_ref().is_none_or(|c| {
                                    (c.steps.len(), c.settled.len(), &c.steps)
                                        > (steps.len(), settled.len(), &steps)
                                });
                                if better {
                                    *slot = Some(Counterexample {
                                        violation,
                                        steps,
                                        settled,
                                    });
                                }
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        visited = shared.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut next = next.into_inner().unwrap_or_else(|e| e.into_inner());
        // The same order whatever the threads did, so that runs are alike.
        next.sort_by_key(|n| (n.parent, n.step));
        report.transitions += transitions.into_inner();
        report.states = visited.len();
        report.elapsed = start.elapsed();
        report.witnessed = Witness::of(witnessed.load(Ordering::Relaxed));
        if !next.is_empty() {
            report.levels.push(next.len());
        }
        let first = arena.len() as u32;
        frontier = (first..first + next.len() as u32).collect();
        arena.extend(next);
        if let Some(c) = found.into_inner().unwrap_or_else(|e| e.into_inner()) {
            report.counterexample = Some(c);
            progress(&report);
            break;
        }
        progress(&report);
    }
    report.elapsed = start.elapsed();
    report
}

/// Replays `steps` from the first state of `bounds`, each checked where it comes, then lets
/// the network quiet and checks it: the violation a counterexample found, or `Ok`.
pub fn replay(bounds: Bounds, steps: &[Step]) -> Result<(), Violation> {
    let mut world = World::replay(bounds, steps).map_err(|(_, v)| v)?;
    world.settle(&mut Vec::new())
}

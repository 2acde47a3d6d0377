//! The device engine against SPEC.md, without tokio: devices joined by perfect wires, one per
//! link, exercising the rules that span links (SESS-1, SESS-3 and SESS-7 across links, LINK-8,
//! token routing) and the cost of each request as their number grows.

mod budget;
mod harness;
mod rules;
mod scale;

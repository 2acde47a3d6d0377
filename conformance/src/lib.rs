//! Conformance suites for acm: they prove that a transport, or a whole protocol implementation
//! in any language, behaves as SPEC.md says.
//!
//! Every case has a stable id that names the SPEC rules it checks (never a position), quotes
//! their text in reports, and ends with a [`Verdict`]: pass, fail (expected and actual),
//! unsupported, or informational. An [`Expectations`] file lists an implementation's known
//! failures with reasons; any other result makes the run fail. Reports print for a terminal,
//! as JSON and as JUnit XML.
//!
//! ```
//! use acm_conformance::{rules, Case, Report};
//!
//! let case = Case::new("wire/FRAME-2/bad-magic", &["FRAME-2"], "bad magic").breaking("FRAME-2");
//! assert!(rules::text(case.rules[0]).unwrap().contains("AC 4D"));
//! assert_eq!(Report::new("nothing yet").counts(), (0, 0, 0, 0));
//! ```

pub mod coverage;
pub mod driver;
pub mod expectations;
pub mod mutant;
pub mod profile;
pub mod protocol;
pub mod report;
pub mod robustness;
pub mod rules;
pub mod transport_suite;
pub mod wire;

pub use expectations::{Expectations, ExpectationsError, Judgement};
pub use report::{Case, CaseResult, Report, Verdict};

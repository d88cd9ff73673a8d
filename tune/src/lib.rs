//! # confab-tune
//!
//! Which window policy should a chat deployment run? This crate answers with numbers: it runs the
//! real [`aggregate_by_key`](confab_pipeline::AggregateByKey) operator over chat traffic in
//! **virtual time** (the input time follows the messages' own timestamps, so a day of traffic runs
//! in seconds, with no sleeping) for each candidate policy, and reports Firestore writes and reads,
//! their monthly cost, the delivery delay each policy adds, write hot spots and memory.
//!
//! - [`workload`]: a seeded synthetic generator (diurnal rate, bursty conversations with
//!   heavy-tailed gaps, turn-taking) and a JSON-lines reader.
//! - [`evaluate`]: one candidate over one workload; [`evaluate_all`] over a grid, in parallel.
//! - [`report`]: the Pareto frontier, the recommendation under a p99 budget, and the table, CSV,
//!   JSON and SVG plot.

#![warn(missing_docs)]

pub mod evaluate;
pub mod grid;
pub mod report;
pub mod workload;

pub use evaluate::{evaluate, evaluate_all, Outcome, Prices};
pub use grid::{Candidate, Grid};
pub use report::{
    distinct_results, pareto_frontier, pareto_frontier_p50, recommend, recommend_within, Budget,
    LeadingEdge,
};
pub use workload::{generate, read_jsonl, WorkloadSpec};

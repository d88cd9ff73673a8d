//! Tests of the operator against a sequential reference model, and of the runtime's delivery
//! guarantees on the in-memory log.

mod decode;
mod failures;
mod model;
mod operator;
mod runtime;
mod time;

//! Runtime tests (below).

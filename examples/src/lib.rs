//! Examples live in `examples/`; run one with `cargo run -p confab-examples --example NAME`.

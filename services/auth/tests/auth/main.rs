//! Integration tests of the auth service, through the real router (`app()` with `oneshot`) and
//! one real TCP server, against SQLite and a real PostgreSQL.
//!
//! Each test runs once per backend (`<test>::sqlite`, `<test>::postgres`). PostgreSQL comes from
//! `DATABASE_URL` (default `postgres://confab:confab@127.0.0.1:5432/confab`, as printed by
//! `scripts/infra env`); every test gets its own schema, dropped afterwards. When PostgreSQL
//! cannot be reached the postgres tests fail and say to run `scripts/infra up postgres`.

mod common;
mod e2e;
mod firebase;
mod health;
mod login;
mod malformed;
mod seed;
mod sessions;
mod signup;
mod throttle;
mod tokens;
mod users;

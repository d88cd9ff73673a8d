//! Integration tests of the chat service, through the real router (`app()` with `oneshot`) and
//! one real TCP server, against SQLite and a real PostgreSQL, and (with the `kafka` and
//! `cassandra` features) a real Kafka and Cassandra.
//!
//! Each database-level test runs once per backend (`<test>::sqlite`, `<test>::postgres`).
//! PostgreSQL comes from `DATABASE_URL` (default `postgres://confab:confab@127.0.0.1:5432/confab`,
//! as printed by `scripts/infra env`); every test gets its own schema, dropped afterwards, holding
//! the auth service's `users` table (its own migrations) next to the chat tables, as deployed.
//! Kafka (`KAFKA_BROKERS`) and Cassandra (`CASSANDRA_NODES`) tests use their own topics and
//! keyspaces. A test whose server cannot be reached fails and names the `scripts/infra up`
//! command that starts it; none passes silently.

mod blocks;
mod chats;
mod common;
mod e2e;
mod events;
mod generated;
mod health;
mod history;
mod live;
mod malformed;
mod messages;
mod reads;
mod revocation;
mod security;

#[cfg(feature = "cassandra")]
mod cassandra;
#[cfg(feature = "kafka")]
mod kafka;

//! Cassandra through the scylla driver: a fresh keyspace, a TimeUUID-clustered table like the
//! history schema, a write and a read in clustering order.

use scylla::client::session_builder::SessionBuilder;

use crate::{env_or, unique_name, unreachable, WAIT};

#[tokio::test]
async fn cassandra_creates_a_keyspace_and_reads_rows_newest_first() {
    let node = env_or("CASSANDRA_NODES", "127.0.0.1:9042");
    let node = node.split(',').next().unwrap_or_default().to_string();
    let session = SessionBuilder::new()
        .known_node(&node)
        .connection_timeout(WAIT)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable("Cassandra", &node, e)));

    let keyspace = unique_name("smoke");
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {keyspace} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await
        .expect("CREATE KEYSPACE");
    session
        .query_unpaged(
            format!(
                "CREATE TABLE {keyspace}.messages (chat_id uuid, time timeuuid, body text, \
                 PRIMARY KEY (chat_id, time)) WITH CLUSTERING ORDER BY (time DESC)"
            ),
            &[],
        )
        .await
        .expect("CREATE TABLE");

    let chat = uuid::Uuid::new_v4();
    let context = uuid::timestamp::context::ContextV1::new_random();
    let node_id = [1, 2, 3, 4, 5, 6];
    let mut times = Vec::new();
    for (i, body) in ["first", "second", "third"].iter().enumerate() {
        let ts = uuid::Timestamp::from_unix(&context, 1_700_000_000 + i as u64, 0);
        let time = uuid::Uuid::new_v1(ts, &node_id);
        times.push(time);
        session
            .query_unpaged(
                format!("INSERT INTO {keyspace}.messages (chat_id, time, body) VALUES (?, ?, ?)"),
                (chat, scylla::value::CqlTimeuuid::from(time), *body),
            )
            .await
            .expect("INSERT");
    }

    let rows = session
        .query_unpaged(
            format!("SELECT body FROM {keyspace}.messages WHERE chat_id = ? AND time < ? LIMIT 2"),
            (chat, scylla::value::CqlTimeuuid::from(times[2])),
        )
        .await
        .expect("SELECT page")
        .into_rows_result()
        .expect("rows result");
    let bodies: Vec<String> = rows
        .rows::<(String,)>()
        .expect("typed rows")
        .map(|row| row.expect("row").0)
        .collect();

    session
        .query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[])
        .await
        .expect("DROP KEYSPACE");
    assert_eq!(
        bodies,
        ["second", "first"],
        "newest first, strictly older than the cursor"
    );
}

//! Kafka through rdkafka: a fresh topic, a keyed record with a header produced with acks=all, and
//! the same record consumed back by a consumer group.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::{env_or, unique_name, unreachable, WAIT};

#[tokio::test]
async fn kafka_produces_and_consumes_a_keyed_record_on_a_fresh_topic() {
    let brokers = env_or("KAFKA_BROKERS", "127.0.0.1:9092");
    let topic = unique_name("smoke");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin client config");
    let options = AdminOptions::new().operation_timeout(Some(WAIT));
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable("Kafka", &brokers, e)));
    for result in created {
        result.unwrap_or_else(|(name, e)| panic!("creating topic {name}: {e}"));
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer config");
    let payload = r#"{"chat_id":"c1","body":"hello"}"#;
    let delivery = producer
        .send(
            FutureRecord::to(&topic).key("c1").payload(payload).headers(
                OwnedHeaders::new().insert(Header {
                    key: "source",
                    value: Some("smoke"),
                }),
            ),
            WAIT,
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("{}", unreachable("Kafka", &brokers, e)));

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &topic)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer config");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("a record within 60 s")
        .expect("consume");

    assert_eq!(message.partition(), delivery.partition);
    assert_eq!(message.offset(), delivery.offset);
    assert_eq!(message.key(), Some("c1".as_bytes()));
    assert_eq!(message.payload(), Some(payload.as_bytes()));
    let header = message
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == "source"))
        .expect("the header survives the round trip");
    assert_eq!(header.value, Some("smoke".as_bytes()));

    admin
        .delete_topics(&[&topic], &options)
        .await
        .expect("delete topic");
}

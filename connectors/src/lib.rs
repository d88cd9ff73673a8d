//! Sources and sinks for Kafka, Fluvio, Firestore, Cassandra, and embedded ones.

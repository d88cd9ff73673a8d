package confab.bench.camel;

/**
 * Where the route reads and writes, from a system property (-Dname=...) or else an environment
 * variable of the same name, or else the seed's value, so the benchmark driver can give every
 * run its own topics and consumer group without a config file.
 */
record Settings(
        String brokers,
        String inputTopic,
        String outputTopic,
        String groupId,
        int completionSize,
        long completionTimeoutMs,
        boolean parallelProcessing,
        String consumerOptions,
        String producerOptions) {

    static Settings load() {
        return new Settings(
                get("KAFKA_BROKERS", "127.0.0.1:9092"),
                get("INPUT_TOPIC", "chat_messages"),
                get("OUTPUT_TOPIC", "chat_messages_grouped"),
                get("GROUP_ID", "camel-aggregator"),
                Integer.parseInt(get("COMPLETION_SIZE", "10")),
                Long.parseLong(get("COMPLETION_TIMEOUT_MS", "3000")),
                // false as in the seed: completed groups are then sent on the thread that
                // completed them (the consumer's, or the timeout checker's), one at a time.
                Boolean.parseBoolean(get("AGGREGATE_PARALLEL", "false")),
                // Extra camel-kafka endpoint options ("consumersCount=3&maxPollRecords=1000"),
                // empty by default: the seed ran the component's defaults, and so do we.
                get("CAMEL_KAFKA_CONSUMER_OPTIONS", ""),
                get("CAMEL_KAFKA_PRODUCER_OPTIONS", ""));
    }

    private static String get(String name, String fallback) {
        String value = System.getProperty(name);
        if (value == null || value.isEmpty()) {
            value = System.getenv(name);
        }
        return value == null || value.isEmpty() ? fallback : value;
    }
}

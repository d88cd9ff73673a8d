package confab.bench.camel;

import org.apache.camel.main.Main;

/**
 * Entry point: runs {@link ChatGroupingRoute} in Camel Main until SIGTERM or SIGINT.
 *
 * Configuration comes from environment variables or system properties (see {@link Settings}):
 * KAFKA_BROKERS (127.0.0.1:9092), INPUT_TOPIC (chat_messages), OUTPUT_TOPIC
 * (chat_messages_grouped), GROUP_ID (camel-aggregator), COMPLETION_SIZE (10),
 * COMPLETION_TIMEOUT_MS (3000), AGGREGATE_PARALLEL (false), CAMEL_KAFKA_CONSUMER_OPTIONS,
 * CAMEL_KAFKA_PRODUCER_OPTIONS.
 */
public final class CamelBaseline {
    private CamelBaseline() {}

    public static void main(String[] args) throws Exception {
        Settings settings = Settings.load();
        Main main = new Main();
        main.configure().addRoutesBuilder(new ChatGroupingRoute(settings));
        System.err.printf("camel-baseline: %s -> %s at %s, group %s, size %d, timeout %d ms, "
                        + "parallel %b, consumer options '%s', producer options '%s'%n",
                settings.inputTopic(), settings.outputTopic(), settings.brokers(), settings.groupId(),
                settings.completionSize(), settings.completionTimeoutMs(), settings.parallelProcessing(),
                settings.consumerOptions(), settings.producerOptions());
        main.run(args);
    }
}

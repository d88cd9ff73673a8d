package confab.bench.camel;

import org.apache.camel.builder.RouteBuilder;
import org.apache.camel.component.kafka.KafkaConstants;
import org.apache.camel.model.dataformat.JsonLibrary;

/**
 * The seed's ChatMessagesRouter, step for step: consume chat messages, unmarshal them with
 * Jackson, group them by sender and chat until 10 messages or 3 s without a new one, and produce
 * each group as JSON keyed by chat_id.
 *
 * Two departures, both in the baseline's favour: the seed's per-group {@code .log(...)} of the
 * whole message list is left out (it measures the logger, not the aggregator), and so is its
 * {@code .setBody(simple("${body}"))} after marshal, which only copies the bytes into a String.
 * Like the seed, groups live only in memory: a crash loses what is buffered.
 */
class ChatGroupingRoute extends RouteBuilder {
    private final Settings settings;

    ChatGroupingRoute(Settings settings) {
        this.settings = settings;
    }

    @Override
    public void configure() {
        // autoOffsetReset=earliest: the seed relied on the default (latest), which would skip a
        // backlog produced before the consumer group first joined, as the benchmark's is.
        String from = "kafka:" + settings.inputTopic()
                + "?brokers=" + settings.brokers()
                + "&groupId=" + settings.groupId()
                + "&autoOffsetReset=earliest"
                + options(settings.consumerOptions());
        String to = "kafka:" + settings.outputTopic()
                + "?brokers=" + settings.brokers()
                + options(settings.producerOptions());

        from(from).routeId("chat-grouping")
                .unmarshal().json(JsonLibrary.Jackson, ChatMessage.class)
                .aggregate(simple("${body.from_user}-${body.chat_id}"), new MessagesByUserStrategy())
                    .completionSize(settings.completionSize())
                    .completionTimeout(settings.completionTimeoutMs())
                    .parallelProcessing(settings.parallelProcessing())
                .setHeader(KafkaConstants.KEY, simple("${body.chat_id}"))
                .marshal().json(JsonLibrary.Jackson)
                .to(to);
    }

    private static String options(String extra) {
        return extra.isEmpty() ? "" : "&" + extra;
    }
}

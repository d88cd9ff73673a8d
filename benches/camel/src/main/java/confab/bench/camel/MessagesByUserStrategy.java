package confab.bench.camel;

import org.apache.camel.AggregationStrategy;
import org.apache.camel.Exchange;

/**
 * The seed's MesssagesAggregationStrategy: the first message of a key starts a
 * {@link MessagesByUser}, every later one is appended to it. Camel calls this under the
 * aggregator's lock, one exchange at a time per key, so the list needs no synchronisation.
 */
public class MessagesByUserStrategy implements AggregationStrategy {
    @Override
    public Exchange aggregate(Exchange oldExchange, Exchange newExchange) {
        ChatMessage message = newExchange.getIn().getBody(ChatMessage.class);
        if (oldExchange == null) {
            newExchange.getIn().setBody(new MessagesByUser(message));
            return newExchange;
        }
        oldExchange.getIn().getBody(MessagesByUser.class).add(message);
        return oldExchange;
    }
}

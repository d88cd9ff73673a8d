package confab.bench.camel;

import java.util.ArrayList;
import java.util.List;

/**
 * One group: the messages one user sent in one chat, as the seed wrote it to
 * {@code chat_messages_grouped} and its Firestore consumer read it
 * ({@code from_user, chat_id, list_of_messages, latest_message_time_iso}).
 */
public class MessagesByUser {
    private String from_user;
    private String chat_id;
    private final List<ChatMessage> list_of_messages = new ArrayList<>();
    private String latest_message_time_iso;

    MessagesByUser(ChatMessage first) {
        from_user = first.getFrom_user();
        chat_id = first.getChat_id();
        add(first);
    }

    void add(ChatMessage message) {
        list_of_messages.add(message);
        // The seed parsed both timestamps with a new SimpleDateFormat per message (and read the
        // microseconds as milliseconds). time_iso is fixed-width ISO 8601, so comparing the text
        // orders it correctly at a fraction of the cost: the baseline is not charged for a bug.
        String iso = message.getTime_iso();
        if (latest_message_time_iso == null
                || (iso != null && iso.compareTo(latest_message_time_iso) > 0)) {
            latest_message_time_iso = iso;
        }
    }

    public String getFrom_user() { return from_user; }
    public String getChat_id() { return chat_id; }
    public List<ChatMessage> getList_of_messages() { return list_of_messages; }
    public String getLatest_message_time_iso() { return latest_message_time_iso; }
}

package confab.bench.camel;

/**
 * One chat message as the chat service produces it to {@code chat_messages}: the seed's
 * ChatMessage with the same JSON field names. Getters and setters (not a record) because the
 * seed's key expression, {@code ${body.from_user}}, reaches fields through bean getters.
 */
public class ChatMessage {
    private String message_id;
    private String chat_id;
    private String from_user;
    private String to_user;
    private String body;
    private String time;
    private String time_iso;

    public String getMessage_id() { return message_id; }
    public void setMessage_id(String v) { message_id = v; }
    public String getChat_id() { return chat_id; }
    public void setChat_id(String v) { chat_id = v; }
    public String getFrom_user() { return from_user; }
    public void setFrom_user(String v) { from_user = v; }
    public String getTo_user() { return to_user; }
    public void setTo_user(String v) { to_user = v; }
    public String getBody() { return body; }
    public void setBody(String v) { body = v; }
    public String getTime() { return time; }
    public void setTime(String v) { time = v; }
    public String getTime_iso() { return time_iso; }
    public void setTime_iso(String v) { time_iso = v; }
}

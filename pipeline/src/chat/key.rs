//! How chat messages are grouped.

use serde::{Deserialize, Serialize};

use super::message::ChatMessage;
use crate::text::Text;

/// How chat messages are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKey {
    /// One group stream per chat: both users' messages share a document (confab's default).
    #[default]
    Chat,
    /// One group stream per chat and sender, as the seed's Camel route keyed `from_user-chat_id`.
    ChatAndSender,
}

impl ChatKey {
    /// The grouping key of `message`. For [`ChatKey::Chat`] it shares the message's buffer, so
    /// keying a record allocates nothing.
    pub fn key(&self, message: &ChatMessage) -> Text {
        match self {
            ChatKey::Chat => message.chat_id.clone(),
            ChatKey::ChatAndSender => {
                // Joined in a reused buffer, then copied once into the key's own allocation: a
                // `format!` allocated twice per record (the String, then the shared copy).
                thread_local! {
                    static JOINED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
                }
                JOINED.with(|joined| {
                    let mut joined = joined.borrow_mut();
                    joined.clear();
                    joined.push_str(&message.from_user);
                    joined.push('-');
                    joined.push_str(&message.chat_id);
                    Text::from(joined.as_str())
                })
            }
        }
    }

    /// The name used in configuration and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChatKey::Chat => "chat",
            ChatKey::ChatAndSender => "chat_and_sender",
        }
    }
}

//! The record decoder under generated bad input (a proptest fuzz, a fixed number of cases so it
//! fits CI; raise `PROPTEST_CASES` for a longer run): it never panics, every rejection carries a
//! reason, and whatever it accepts re-encodes to the same message.

use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms, timeuuid_ms};
use confab_pipeline::ChatMessage;
use proptest::prelude::*;

const LIMIT: usize = 64 * 1024;

fn message(body: String, ms: u64) -> ChatMessage {
    ChatMessage {
        message_id: "m-1".into(),
        chat_id: "c-1".into(),
        from_user: "u-1".into(),
        to_user: "u-2".into(),
        body: body.into(),
        time: timeuuid_from_ms(ms, 7, [1, 2, 3, 4, 5, 6]),
        time_iso: iso_from_ms(ms).into(),
    }
}

/// One way of spoiling a valid record.
#[derive(Debug, Clone)]
enum Spoil {
    Truncate(usize),
    FlipByte(usize, u8),
    DropField(usize),
    WrongType(usize, serde_json::Value),
    UnknownField(String),
    Duplicate,
    Pad(usize),
}

fn arb_spoil() -> impl Strategy<Value = Spoil> {
    let wrong = prop_oneof![
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::json!([1, 2])),
        Just(serde_json::json!({"a": 1})),
        "[a-z0-9-]{0,40}".prop_map(serde_json::Value::from),
    ];
    prop_oneof![
        any::<usize>().prop_map(Spoil::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Spoil::FlipByte(i, b)),
        (0usize..7).prop_map(Spoil::DropField),
        ((0usize..7), wrong).prop_map(|(i, v)| Spoil::WrongType(i, v)),
        "[a-z_]{1,12}".prop_map(Spoil::UnknownField),
        Just(Spoil::Duplicate),
        (LIMIT - 200..LIMIT * 2).prop_map(Spoil::Pad),
    ]
}

const FIELDS: [&str; 7] = ChatMessage::FIELDS;

fn spoil(valid: &ChatMessage, how: &Spoil) -> Vec<u8> {
    let bytes = valid.encode();
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).expect("a valid message is a JSON object");
    match how {
        Spoil::Truncate(at) => bytes[..at % bytes.len()].to_vec(),
        Spoil::FlipByte(at, byte) => {
            let mut bytes = bytes;
            let i = at % bytes.len();
            bytes[i] ^= byte | 1;
            bytes
        }
        Spoil::DropField(i) => {
            object.remove(FIELDS[*i]);
            serde_json::to_vec(&object).unwrap_or_default()
        }
        Spoil::WrongType(i, value) => {
            object.insert(FIELDS[*i].into(), value.clone());
            serde_json::to_vec(&object).unwrap_or_default()
        }
        Spoil::UnknownField(name) => {
            object.insert(format!("x_{name}"), serde_json::Value::from(1));
            serde_json::to_vec(&object).unwrap_or_default()
        }
        Spoil::Duplicate => {
            // The same key twice: `{"message_id":"m-1", ... ,"message_id":"other"}`.
            let mut text = String::from_utf8(bytes).unwrap_or_default();
            text.pop();
            text.push_str(r#","message_id":"other"}"#);
            text.into_bytes()
        }
        Spoil::Pad(size) => {
            object.insert("body".into(), serde_json::Value::from("x".repeat(*size)));
            serde_json::to_vec(&object).unwrap_or_default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_rejected_with_a_reason_and_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        if let Err(e) = ChatMessage::decode(&bytes, LIMIT) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn any_text_in_any_field_round_trips_verbatim(
        body in any::<String>(),
        ms in 0u64..4_000_000_000_000,
    ) {
        // Bodies with quotes, backslashes, control characters, SQL/CQL or HTML payloads.
        let m = message(body, ms);
        let back = ChatMessage::decode(&m.encode(), usize::MAX).expect("a valid message decodes");
        prop_assert_eq!(timeuuid_ms(&back.time), Some(ms));
        prop_assert_eq!(back, m);
    }

    #[test]
    fn a_spoiled_record_is_rejected_with_a_reason_or_still_a_valid_message(
        body in "[ -~]{0,80}",
        how in arb_spoil(),
    ) {
        let valid = message(body, 1_700_000_000_000);
        let bytes = spoil(&valid, &how);
        match ChatMessage::decode(&bytes, LIMIT) {
            Err(e) => prop_assert!(!e.to_string().is_empty(), "{:?}", how),
            Ok(decoded) => {
                // Accepted only if it still is a whole, valid message.
                prop_assert!(decoded.validate().is_ok());
                prop_assert!(bytes.len() <= LIMIT);
                let reencoded = ChatMessage::decode(&decoded.encode(), LIMIT);
                prop_assert_eq!(reencoded.ok(), Some(decoded));
            }
        }
        // These spoilings can never leave a valid record.
        if matches!(how, Spoil::DropField(_) | Spoil::UnknownField(_) | Spoil::Duplicate) {
            prop_assert!(ChatMessage::decode(&bytes, LIMIT).is_err(), "{:?} was accepted", how);
        }
    }
}

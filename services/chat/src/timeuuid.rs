//! The TimeUUIDs (version 1) the service stamps messages with, and the helpers that order them.
//!
//! [`TimeUuidClock`] hands out strictly increasing timestamps within the process: the wall clock
//! in milliseconds plus a counter for the sub-millisecond ticks (up to 10,000 per millisecond;
//! past that, or when the wall clock steps back, the clock runs a little ahead of the wall
//! clock until it catches up). The node field is random per process (with the multicast bit set,
//! as RFC 9562 asks of random nodes), so two processes never make the same id.

use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms, timeuuid_ms};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Sub-millisecond ticks available per millisecond (a TimeUUID counts 100 ns units).
const TICKS_PER_MS: u16 = 10_000;

/// Makes the `time` of each message.
#[derive(Debug)]
pub struct TimeUuidClock {
    node: [u8; 6],
    last: Mutex<(u64, u16)>,
}

impl Default for TimeUuidClock {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeUuidClock {
    /// A clock with a random node id.
    pub fn new() -> Self {
        let mut node = [0u8; 6];
        if getrandom::fill(&mut node).is_err() {
            // Without OS randomness, the time still keeps ids of this process apart; the
            // process id keeps two such processes apart in most cases.
            node[..4].copy_from_slice(&std::process::id().to_be_bytes());
        }
        node[0] |= 0x01;
        Self {
            node,
            last: Mutex::new((0, 0)),
        }
    }

    /// The next TimeUUID and its instant in milliseconds since the Unix epoch.
    pub fn next(&self) -> (Uuid, u64) {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (ms, counter) = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let next = if wall > last.0 {
                (wall, 0)
            } else if last.1 + 1 < TICKS_PER_MS {
                (last.0, last.1 + 1)
            } else {
                (last.0 + 1, 0)
            };
            *last = next;
            next
        };
        (timeuuid_from_ms(ms, counter, self.node), ms)
    }

    /// A new message time: the TimeUUID and its RFC 3339 text.
    pub fn stamp(&self) -> (Uuid, String) {
        let (time, ms) = self.next();
        (time, iso_from_ms(ms))
    }
}

/// The 60-bit timestamp of a version-1 UUID (100 ns units since 1582-10-15), which orders
/// TimeUUIDs by time; `None` for other versions.
pub fn ticks(time: &Uuid) -> Option<i64> {
    if time.get_version_num() != 1 {
        return None;
    }
    let (ticks, _) = time.get_timestamp()?.to_gregorian();
    i64::try_from(ticks).ok()
}

/// 100 ns ticks from the TimeUUID epoch (1582-10-15) to the Unix epoch.
const GREGORIAN_TO_UNIX_TICKS: i64 = 0x01B2_1DD2_1381_4000;

/// A version-1 UUID's instant in microseconds since the Unix epoch; `None` for other versions.
pub fn unix_micros(time: &Uuid) -> Option<i64> {
    ticks(time).map(|t| (t - GREGORIAN_TO_UNIX_TICKS) / 10)
}

/// Parses a `time` cursor: a version-1 TimeUUID, or a message saying what is wrong.
pub fn parse_cursor(text: &str) -> Result<Uuid, String> {
    let id = Uuid::parse_str(text)
        .map_err(|_| format!("time {text:?} is not a UUID; pass the `time` of a message"))?;
    if timeuuid_ms(&id).is_none() {
        return Err(format!(
            "time {text:?} is a version-{} UUID; it must be a version-1 TimeUUID",
            id.get_version_num()
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_strictly_increase_and_carry_the_wall_clock() {
        let clock = TimeUuidClock::new();
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut previous = 0;
        for _ in 0..25_000 {
            let (time, ms) = clock.next();
            let t = ticks(&time).expect("a TimeUUID");
            assert!(t > previous, "strictly increasing");
            previous = t;
            assert_eq!(timeuuid_ms(&time), Some(ms));
            assert!(ms >= before);
        }
    }

    #[test]
    fn two_clocks_never_make_the_same_id() {
        let (a, b) = (TimeUuidClock::new(), TimeUuidClock::new());
        assert_ne!(a.node, b.node);
        assert_ne!(a.next().0, b.next().0);
    }

    #[test]
    fn cursors_must_be_version_1() {
        let (time, _) = TimeUuidClock::new().next();
        assert_eq!(parse_cursor(&time.to_string()), Ok(time));
        assert!(parse_cursor("nope").is_err());
        let v4 = Uuid::new_v4().to_string();
        assert!(parse_cursor(&v4).expect_err("v4").contains("version-4"));
        assert_eq!(ticks(&Uuid::new_v4()), None);
    }

    #[test]
    fn ticks_order_like_time() {
        let earlier = timeuuid_from_ms(1_000, 9_999, [0xff; 6]);
        let later = timeuuid_from_ms(1_001, 0, [0; 6]);
        assert!(ticks(&earlier) < ticks(&later));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, ..Default::default() })]

        /// Any text as a cursor: a version-1 TimeUUID or a reason quoting the input, never a panic.
        #[test]
        fn any_cursor_text_parses_or_gets_a_reason(text in proptest::prelude::any::<String>()) {
            match parse_cursor(&text) {
                Ok(id) => proptest::prop_assert!(timeuuid_ms(&id).is_some()),
                Err(reason) => {
                    let quoted = format!("{text:?}");
                    proptest::prop_assert!(reason.contains(&quoted), "{}", reason);
                }
            }
        }

        /// Every TimeUUID, in any of the forms `Uuid` parses, round-trips.
        #[test]
        fn every_timeuuid_is_accepted(ms in 0u64..10_000_000_000_000, seq in 0u16..16_384) {
            let time = timeuuid_from_ms(ms, seq, [9; 6]);
            proptest::prop_assert_eq!(parse_cursor(&time.to_string()), Ok(time));
            proptest::prop_assert_eq!(parse_cursor(&time.simple().to_string()), Ok(time));
            proptest::prop_assert_eq!(parse_cursor(&time.to_string().to_uppercase()), Ok(time));
        }
    }
}

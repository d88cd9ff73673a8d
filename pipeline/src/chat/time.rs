//! TimeUUIDs (version-1 UUIDs) and the instants inside them.

use uuid::Uuid;

/// The milliseconds since the Unix epoch inside a version-1 UUID, or `None` for other versions.
pub fn timeuuid_ms(id: &Uuid) -> Option<u64> {
    if id.get_version_num() != 1 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos) / 1_000_000)
}

/// Makes a version-1 TimeUUID for `ms` milliseconds since the Unix epoch. `counter` fills the
/// sub-millisecond ticks (so up to 10,000 distinct ids per millisecond and node), and `node` the
/// node field; both keep ids made in the same millisecond apart.
pub fn timeuuid_from_ms(ms: u64, counter: u16, node: [u8; 6]) -> Uuid {
    let ticks = (ms * 10_000 + u64::from(counter % 10_000)) + 0x01B2_1DD2_1381_4000;
    let ts = uuid::Timestamp::from_gregorian_time(ticks, counter);
    Uuid::new_v1(ts, &node)
}

/// The RFC 3339 text (UTC, millisecond precision) of `ms` milliseconds since the Unix epoch.
pub fn iso_from_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Howard Hinnant's days-to-civil algorithm: the (year, month, day) of a day count since
/// 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeuuid_round_trips_milliseconds() {
        for ms in [0, 1, 1_700_000_000_123, 4_102_444_800_000] {
            assert_eq!(timeuuid_ms(&timeuuid_from_ms(ms, 9_999, [0; 6])), Some(ms));
        }
    }

    #[test]
    fn iso_text_matches_known_instants() {
        assert_eq!(iso_from_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_from_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_from_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}

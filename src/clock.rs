//! Wall-clock time, in the forms the rest of the program shows it: milliseconds since the Unix
//! epoch (announcements, stats, the dump) and RFC 3339 UTC text (`GET /leader`, scripts'
//! `now_iso()`). Monotonic durations use `std::time::Instant` directly.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, now (negative before 1970).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Seconds since the Unix epoch, now, with the clock's sub-second precision.
pub fn now_secs() -> f64 {
    let now = Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_nanos()) * 1e-9
}

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds, e.g.
/// `2024-02-29T12:34:56.789Z`. An instant outside chrono's range (about ±262,000 years) is
/// written as its number of milliseconds.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    DateTime::from_timestamp_millis(unix_ms).map_or_else(
        || format!("{unix_ms} ms since the Unix epoch"),
        |time| time.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // now_ms() and now_secs() are checked against the system clock through the scripts'
    // now(), now_ms() and now_iso() (script::tests::time_functions_agree_with_the_clock).

    #[test]
    fn rfc3339_is_right_around_leap_days_and_before_1970() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(rfc3339_ms(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339_ms(i64::MAX),
            format!("{} ms since the Unix epoch", i64::MAX)
        );
    }
}

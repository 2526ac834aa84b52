//! Numbers of the app file: counts that must be positive and durations in seconds.

use std::time::Duration;

use toml::Spanned;

use super::super::diagnostics::Report;
use super::super::schema::DurationKey;

/// A count of at least 1, or `default` when not given (or, after reporting it, when 0).
pub(super) fn positive<T>(
    report: &mut Report<'_>,
    value: Option<&Spanned<T>>,
    key: &str,
    default: T,
) -> T
where
    T: Copy + PartialEq + Default,
{
    match value {
        Some(v) if *v.get_ref() == T::default() => {
            report.error(v.span(), format!("`{key}` must be at least 1"));
            default
        }
        Some(v) => *v.get_ref(),
        None => default,
    }
}

/// A duration key's value, or its default when not given (or, after reporting it, when bad).
pub(super) fn seconds(
    report: &mut Report<'_>,
    value: Option<&Spanned<f64>>,
    key: DurationKey,
) -> Duration {
    let fallback = Duration::from_secs_f64(key.default);
    let Some(v) = value else {
        return fallback;
    };
    match checked_seconds(*v.get_ref(), key.max) {
        Ok(d) => d,
        Err(why) => {
            report.error(v.span(), format!("`{}` {why}", key.key));
            fallback
        }
    }
}

/// A duration in seconds: finite, > 0, at most `max`; the error completes "`key` ...".
pub(super) fn checked_seconds(value: f64, max: f64) -> Result<Duration, String> {
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("must be a positive number of seconds, got {value}"));
    }
    if value > max {
        return Err(format!("must be at most {max} seconds, got {value}"));
    }
    if value < 0.001 {
        return Err(format!("must be at least 0.001 seconds, got {value}"));
    }
    Duration::try_from_secs_f64(value).map_err(|e| format!("is not a duration: {e}"))
}

//! `[app]`: the app's own settings with their defaults applied, and how its timings must relate
//! to one another.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::super::diagnostics::Report;
use super::super::schema::{AppSection, DurationKey};
use super::brokers::parse_brokers;
use super::names::check_app_id;
use super::values::{positive, seconds};
use crate::codec::Serializer;
use crate::kafka::{GroupProtocol, ProcessingGuarantee};

/// `[app]` with defaults applied.
pub(super) struct Settings {
    pub brokers: Vec<String>,
    pub key_serializer: Serializer,
    pub value_serializer: Serializer,
    pub topic_partitions: u32,
    pub topic_replication_factor: u16,
    pub timing: Timing,
    pub commit_every: u64,
    pub processing_guarantee: ProcessingGuarantee,
    pub group_protocol: GroupProtocol,
    pub evict_dead_leaders: bool,
}

/// The durations of `[app]`.
pub(super) struct Timing {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub election_session_timeout: Duration,
    pub election_heartbeat_interval: Duration,
    pub max_poll_interval: Duration,
    pub commit_interval: Duration,
}

pub(super) fn check(report: &mut Report<'_>, app: &AppSection) -> Settings {
    if let Err(why) = check_app_id(app.id.get_ref()) {
        report.error(app.id.span(), why);
    }
    let brokers = brokers(report, app);
    let topic_partitions = positive(
        report,
        app.topic_partitions.as_ref(),
        "topic_partitions",
        AppSection::TOPIC_PARTITIONS,
    );
    let topic_replication_factor = positive(
        report,
        app.topic_replication_factor.as_ref(),
        "topic_replication_factor",
        AppSection::TOPIC_REPLICATION_FACTOR,
    );
    let processing_guarantee = app
        .processing_guarantee
        .unwrap_or(AppSection::PROCESSING_GUARANTEE);
    let timing = timing(report, app, processing_guarantee);
    let commit_every = positive(
        report,
        app.commit_every.as_ref(),
        "commit_every",
        match processing_guarantee {
            ProcessingGuarantee::AtLeastOnce => AppSection::COMMIT_EVERY,
            ProcessingGuarantee::ExactlyOnce => AppSection::EXACTLY_ONCE_COMMIT_EVERY,
        },
    );
    let group_protocol = app.group_protocol.unwrap_or(AppSection::GROUP_PROTOCOL);
    check_timing(report, app, &timing);
    if group_protocol == GroupProtocol::Consumer {
        warn_broker_owned_timing(report, app);
    }
    Settings {
        brokers,
        key_serializer: app.key_serializer.unwrap_or(AppSection::KEY_SERIALIZER),
        value_serializer: app.value_serializer.unwrap_or(AppSection::VALUE_SERIALIZER),
        topic_partitions,
        topic_replication_factor,
        timing,
        commit_every,
        processing_guarantee,
        group_protocol,
        evict_dead_leaders: app
            .evict_dead_leaders
            .unwrap_or(AppSection::EVICT_DEAD_LEADERS),
    }
}

fn brokers(report: &mut Report<'_>, app: &AppSection) -> Vec<String> {
    let Some(url) = &app.broker else {
        return parse_brokers(AppSection::BROKER).unwrap_or_default();
    };
    parse_brokers(url.get_ref()).unwrap_or_else(|why| {
        report.error(url.span(), why);
        Vec::new()
    })
}

/// Each duration, within its bounds.
fn timing(report: &mut Report<'_>, app: &AppSection, guarantee: ProcessingGuarantee) -> Timing {
    Timing {
        session_timeout: seconds(
            report,
            app.session_timeout.as_ref(),
            AppSection::SESSION_TIMEOUT,
        ),
        heartbeat_interval: seconds(
            report,
            app.heartbeat_interval.as_ref(),
            AppSection::HEARTBEAT_INTERVAL,
        ),
        election_session_timeout: seconds(
            report,
            app.election_session_timeout.as_ref(),
            AppSection::ELECTION_SESSION_TIMEOUT,
        ),
        election_heartbeat_interval: seconds(
            report,
            app.election_heartbeat_interval.as_ref(),
            AppSection::ELECTION_HEARTBEAT_INTERVAL,
        ),
        max_poll_interval: seconds(
            report,
            app.max_poll_interval.as_ref(),
            AppSection::MAX_POLL_INTERVAL,
        ),
        commit_interval: seconds(
            report,
            app.commit_interval.as_ref(),
            match guarantee {
                ProcessingGuarantee::AtLeastOnce => AppSection::COMMIT_INTERVAL,
                ProcessingGuarantee::ExactlyOnce => AppSection::EXACTLY_ONCE_COMMIT_INTERVAL,
            },
        ),
    }
}

/// How the durations must relate to the session timeout: heartbeats come well within it (one
/// lost heartbeat should not end a session), and an agent may be stuck on a record for longer.
fn check_timing(report: &mut Report<'_>, app: &AppSection, timing: &Timing) {
    let session = timing.session_timeout;
    let election_session = timing.election_session_timeout;
    let election_heartbeat = timing.election_heartbeat_interval;
    if election_heartbeat >= election_session {
        let span = app
            .election_heartbeat_interval
            .as_ref()
            .or(app.election_session_timeout.as_ref())
            .map_or(app.id.span(), |s| s.span());
        let why = against_session(AppSection::ELECTION_HEARTBEAT_INTERVAL, election_heartbeat);
        let session_key = AppSection::ELECTION_SESSION_TIMEOUT;
        report.error(
            span,
            format!(
                "{why} must be less than {}",
                against_session(session_key, election_session)
            ),
        );
    }
    let heartbeat = timing.heartbeat_interval;
    if heartbeat >= session {
        let span = relation_span(app, app.heartbeat_interval.as_ref());
        let why = against_session(AppSection::HEARTBEAT_INTERVAL, heartbeat);
        report.error(
            span,
            format!("{why} must be less than {}", seconds_of(session)),
        );
    } else if heartbeat * 3 > session
        && let Some(h) = &app.heartbeat_interval
    {
        report.warn(
            h.span(),
            "`heartbeat_interval` above a third of `session_timeout` risks evictions on a \
             single lost heartbeat",
        );
    }
    let max_poll = timing.max_poll_interval;
    if max_poll < session {
        let span = relation_span(app, app.max_poll_interval.as_ref());
        let why = against_session(AppSection::MAX_POLL_INTERVAL, max_poll);
        report.error(
            span,
            format!("{why} must be at least {}", seconds_of(session)),
        );
    }
}

/// "`key` (Ns)": the first half of a message about a duration and the session timeout.
fn against_session(key: DurationKey, value: Duration) -> String {
    format!("`{}` ({}s)", key.key, value.as_secs_f64())
}

/// "`session_timeout` (Ns)".
fn seconds_of(session: Duration) -> String {
    against_session(AppSection::SESSION_TIMEOUT, session)
}

/// Where a duration at odds with the session timeout is reported: at the duration if given,
/// else at `session_timeout`, else at `id`.
fn relation_span(app: &AppSection, duration: Option<&Spanned<f64>>) -> Range<usize> {
    duration
        .or(app.session_timeout.as_ref())
        .map_or(app.id.span(), |s| s.span())
}

/// With KIP-848 the broker sets the session and heartbeat timing: the keys do nothing.
fn warn_broker_owned_timing(report: &mut Report<'_>, app: &AppSection) {
    for (key, value) in [
        ("session_timeout", &app.session_timeout),
        ("heartbeat_interval", &app.heartbeat_interval),
    ] {
        if let Some(v) = value {
            report.warn(
                v.span(),
                format!(
                    "`{key}` is ignored with group_protocol = \"consumer\": the broker sets it"
                ),
            );
        }
    }
}

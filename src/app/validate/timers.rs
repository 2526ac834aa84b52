//! `[[timers]]`: schedules (an interval, or a crontab expression in a time zone), the election
//! a timer runs under, and its body.

use std::str::FromStr;

use croner::parser::{CronParser, Seconds, Year};
use toml::Spanned;

use super::super::diagnostics::Report;
use super::super::load::Entry;
use super::super::model::{Schedule, Timer};
use super::super::schema::TimerDef;
use super::bodies::{Bodies, BodyKeys, help};
use super::elections::{Elections, bound_election};
use super::names::{Names, check_plain_name};
use super::values::checked_seconds;
use crate::script::BodyKind;

/// Each timer, resolved; those with errors are left out (after reporting them).
pub(super) fn check(
    report: &mut Report<'_>,
    entries: &[Entry<TimerDef>],
    elections: &Elections,
    bodies: &Bodies<'_>,
) -> Vec<Timer> {
    let mut names = Names::new("timer");
    let mut timers = Vec::new();
    for entry in entries {
        if names.admit(report, &entry.def.name, |n| check_plain_name(n, "timer"))
            && let Some(timer) = timer(report, entry, elections, bodies)
        {
            timers.push(timer);
        }
    }
    timers
}

fn timer(
    report: &mut Report<'_>,
    entry: &Entry<TimerDef>,
    elections: &Elections,
    bodies: &Bodies<'_>,
) -> Option<Timer> {
    let def = &entry.def;
    let name = def.name.get_ref();
    let schedule = schedule(report, entry);
    let on_leader = on_leader(report, def);
    let election = bound_election(report, on_leader, def.election.as_ref(), elections);
    let body = bodies.read(
        report,
        BodyKeys::body_or_file(
            BodyKind::Timer,
            &def.name,
            def.body.as_ref(),
            def.file.as_ref(),
            &entry.dropped,
        ),
    );
    Some(Timer {
        name: name.clone(),
        schedule: schedule?,
        election,
        help: help(def.help.as_ref(), body.as_ref()),
        body: body?,
    })
}

/// `on_leader`, or its deprecated alias `on_master` (Faust's older name).
fn on_leader<'d>(report: &mut Report<'_>, def: &'d TimerDef) -> Option<&'d Spanned<bool>> {
    if let Some(m) = &def.on_master {
        report.warn(
            m.span(),
            "`on_master` is deprecated: write `on_leader` (same meaning)",
        );
        if def.on_leader.is_some() {
            report.error(
                m.span(),
                "both `on_leader` and its deprecated alias `on_master` are set: keep `on_leader`",
            );
        }
    }
    def.on_leader.as_ref().or(def.on_master.as_ref())
}

fn schedule(report: &mut Report<'_>, entry: &Entry<TimerDef>) -> Option<Schedule> {
    let def = &entry.def;
    match (&def.interval, &def.cron) {
        (None, None) if entry.dropped("interval") || entry.dropped("cron") => None,
        (Some(_), Some(cron)) => {
            report.error(
                cron.span(),
                "`interval` and `cron` are both set: give exactly one",
            );
            None
        }
        (None, None) => {
            report.error(
                def.name.span(),
                format!(
                    "timer `{}` needs a schedule: `interval = SECONDS` or `cron = \"M H DOM MON DOW\"`",
                    def.name.get_ref()
                ),
            );
            None
        }
        (Some(interval), None) => interval_schedule(report, def, interval),
        (None, Some(cron)) => cron_schedule(report, def, cron),
    }
}

fn interval_schedule(
    report: &mut Report<'_>,
    def: &TimerDef,
    interval: &Spanned<f64>,
) -> Option<Schedule> {
    if let Some(tz) = &def.timezone {
        report.error(tz.span(), "`timezone` applies only to `cron` timers");
    }
    match checked_seconds(*interval.get_ref(), TimerDef::INTERVAL_MAX) {
        Ok(every) => Some(Schedule::Interval(every)),
        Err(why) => {
            report.error(interval.span(), format!("`interval` {why}"));
            None
        }
    }
}

fn cron_schedule(
    report: &mut Report<'_>,
    def: &TimerDef,
    cron: &Spanned<String>,
) -> Option<Schedule> {
    let timezone = match &def.timezone {
        None => Some(TimerDef::TIMEZONE),
        Some(tz) => chrono_tz::Tz::from_str(tz.get_ref())
            .map_err(|_| {
                report.error(
                    tz.span(),
                    format!(
                        "unknown time zone `{}`: use an IANA name such as `UTC` or `Europe/Paris`",
                        tz.get_ref()
                    ),
                )
            })
            .ok(),
    };
    let parsed = parse_cron(cron.get_ref())
        .map_err(|why| report.error(cron.span(), why))
        .ok();
    Some(Schedule::Cron {
        expression: cron.get_ref().trim().to_owned(),
        timezone: timezone?,
        cron: Box::new(parsed?),
    })
}

/// A strict 5-field crontab expression.
pub(crate) fn parse_cron(expression: &str) -> Result<croner::Cron, String> {
    let fields = expression.split_whitespace().count();
    if expression.trim_start().starts_with('@') {
        return Err(format!(
            "bad cron expression `{expression}`: nicknames such as @daily are not accepted; \
             write the 5 fields (e.g. `0 0 * * *`)"
        ));
    }
    if fields != 5 {
        return Err(format!(
            "bad cron expression `{expression}`: expected 5 fields (minute hour day-of-month \
             month day-of-week), found {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| format!("bad cron expression `{expression}`: {e}"))
}

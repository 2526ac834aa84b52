//! `GET /metrics`: the worker's counters, its part in each election and its latency histograms,
//! in Prometheus' text format (0.0.4) through `prometheus-client`.
//!
//! The counters stay plain atomics in [`WorkerState`] (the hot path never looks a metric up);
//! each scrape copies them, with the elections' state and the histograms, into one collector
//! that a fresh registry encodes.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::worker::state::{StatsSnapshot, WorkerState};
use crate::worker::timing::Seconds;

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The exposition of `state`, as of now.
pub fn render(state: &WorkerState) -> String {
    let scrape = Scrape {
        stats: state.snapshot(),
        elections: state
            .elections
            .iter()
            .map(|e| ElectionView::of(e))
            .collect(),
        event_durations: state
            .agents
            .iter()
            .map(|(name, c)| (name.clone(), c.event_duration.clone()))
            .collect(),
        timer_lateness: state
            .timers
            .iter()
            .map(|(name, c)| (name.clone(), c.lateness.clone()))
            .collect(),
        commit_duration: state.commit_duration.clone(),
        rebalance_duration: state.rebalance_duration.clone(),
        tables: state
            .tables
            .get()
            .map(|service| TablesView::of(&service.tables)),
    };
    let mut registry = Registry::with_prefix("faust_rs");
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

/// One election as this worker sees it.
#[derive(Debug)]
struct ElectionView {
    name: String,
    leading: bool,
    candidate: bool,
    epoch: Option<i64>,
    terms_begun: u64,
}

impl ElectionView {
    fn of(election: &crate::election::Election) -> ElectionView {
        ElectionView {
            name: election.name.clone(),
            leading: election.is_leading(),
            candidate: election.candidate,
            epoch: election.current_epoch(),
            terms_begun: election.terms_begun(),
        }
    }
}

/// The tables as this worker holds them.
#[derive(Debug)]
struct TablesView {
    /// (table, keys held here).
    keys: Vec<(String, usize)>,
    recovering: u64,
    records_read: u64,
    rows_loaded: u64,
}

impl TablesView {
    fn of(tables: &crate::tables::Tables) -> TablesView {
        let progress = &tables.progress;
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        TablesView {
            keys: tables.sizes(),
            recovering: load(&progress.recovering),
            records_read: load(&progress.records_read),
            rows_loaded: load(&progress.rows_loaded),
        }
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let keys = self
            .keys
            .iter()
            .map(|(name, keys)| (name.as_str(), *keys as i64));
        gauge_family(
            encoder,
            "table_keys",
            "Keys of the table held by this worker.",
            "table",
            keys,
        )?;
        gauge(
            encoder,
            "table_partitions_recovering",
            "Table partitions being recovered (their events wait).",
            self.recovering as i64,
        )?;
        counter(
            encoder,
            "table_changelog_records_read",
            "Changelog records read by recoveries and global tables' followers.",
            self.records_read,
        )?;
        counter(
            encoder,
            "table_rows_loaded",
            "Rows loaded from the local stores by recoveries.",
            self.rows_loaded,
        )
    }
}

/// Everything one scrape shows, copied out of the worker's state.
#[derive(Debug)]
struct Scrape {
    stats: StatsSnapshot,
    elections: Vec<ElectionView>,
    event_durations: Vec<(String, Seconds)>,
    timer_lateness: Vec<(String, Seconds)>,
    commit_duration: Seconds,
    rebalance_duration: Seconds,
    tables: Option<TablesView>,
}

type Labels<'a> = [(&'static str, &'a str); 1];

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_worker(&mut encoder)?;
        self.encode_agents(&mut encoder)?;
        self.encode_timers(&mut encoder)?;
        self.encode_elections(&mut encoder)?;
        if let Some(tables) = &self.tables {
            tables.encode(&mut encoder)?;
        }
        self.encode_histograms(&mut encoder)
    }
}

impl Scrape {
    fn encode_worker(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.stats;
        gauge(
            encoder,
            "uptime_seconds",
            "Seconds since the worker started.",
            stats.uptime_seconds,
        )?;
        gauge(
            encoder,
            "ready",
            "1 once the worker joined its group and has an assignment.",
            i64::from(stats.ready),
        )?;
        counter(
            encoder,
            "rebalances",
            "Rebalances of the agents' group seen by this worker.",
            stats.rebalances,
        )?;
        counter(encoder, "commits", "Offset commits made.", stats.commits)?;
        counter(
            encoder,
            "transactions_aborted",
            "Agents' transactions aborted (exactly-once); their events are processed again.",
            stats.transactions_aborted,
        )?;
        let lag = stats.commit_lag.iter().map(|(tp, lag)| (tp.as_str(), *lag));
        gauge_family(
            encoder,
            "consumer_lag",
            "Messages between the committed position and the end of the partition.",
            "partition",
            lag,
        )
    }

    fn encode_agents(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let fields: [CounterField<crate::worker::state::AgentStats>; 5] = [
            (
                "agent_events_in",
                "Events handed to the agent's body.",
                |s| s.events_in,
            ),
            (
                "agent_events_out",
                "Records sent by the agent's body and acknowledged.",
                |s| s.events_out,
            ),
            (
                "agent_events_failed",
                "Events whose processing failed.",
                |s| s.events_failed,
            ),
            (
                "agent_dead_lettered",
                "Failed events written to the dead-letter topic.",
                |s| s.dead_lettered,
            ),
            (
                "agent_events_stale",
                "Events skipped as sent by a stale leader.",
                |s| s.events_stale,
            ),
        ];
        counter_fields(encoder, "agent", &self.stats.agents, &fields)
    }

    fn encode_timers(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let fields: [CounterField<crate::worker::state::TimerStats>; 3] = [
            ("timer_runs", "Runs of the timer's body.", |s| s.runs),
            ("timer_failures", "Runs that ended in an error.", |s| {
                s.failures
            }),
            (
                "timer_skipped",
                "Ticks skipped because this worker did not lead.",
                |s| s.skipped_not_leader,
            ),
        ];
        counter_fields(encoder, "timer", &self.stats.timers, &fields)
    }

    fn encode_elections(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let each = |value: fn(&ElectionView) -> i64| {
            self.elections
                .iter()
                .map(move |e| (e.name.as_str(), value(e)))
        };
        gauge_family(
            encoder,
            "is_leader",
            "1 while this worker leads the election, else 0.",
            "election",
            each(|e| i64::from(e.leading)),
        )?;
        gauge_family(
            encoder,
            "election_candidate",
            "1 if this worker runs for the election, 0 if it only follows it.",
            "election",
            each(|e| i64::from(e.candidate)),
        )?;
        let epochs = self
            .elections
            .iter()
            .filter_map(|e| Some((e.name.as_str(), e.epoch?)));
        gauge_family(
            encoder,
            "leader_epoch",
            "Epoch of the newest term this worker knows of (absent before it read one).",
            "election",
            epochs,
        )?;
        let changes = self
            .elections
            .iter()
            .map(|e| (e.name.as_str(), e.terms_begun));
        counter_family(
            encoder,
            "leader_changes",
            "Terms this worker has seen begin since it started.",
            "election",
            changes,
        )
    }

    fn encode_histograms(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        histogram_family(
            encoder,
            "event_duration_seconds",
            "From an event's hand-off to the agent's body until every record it sent is acknowledged.",
            "agent",
            &self.event_durations,
        )?;
        histogram_family(
            encoder,
            "timer_lateness_seconds",
            "How long after its scheduled time a timer's body started.",
            "timer",
            &self.timer_lateness,
        )?;
        histogram(
            encoder,
            "commit_duration_seconds",
            "From an offset commit's request to the broker's answer.",
            &self.commit_duration,
        )?;
        histogram(
            encoder,
            "rebalance_duration_seconds",
            "From the start of a join or a revocation of the agents' group to the assignment that ends it.",
            &self.rebalance_duration,
        )
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeGaugeValue + Copy + Send + Sync + std::fmt::Debug,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// A gauge with one label; nothing at all when there are no values.
fn gauge_family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl Iterator<Item = (&'a str, i64)>,
) -> Result<(), std::fmt::Error> {
    let samples = values.map(|(value_label, value)| (value_label, ConstGauge::new(value)));
    family(encoder, name, help, label, samples)
}

/// A counter's name, help and how to read its value from a row.
type CounterField<S> = (&'static str, &'static str, fn(&S) -> u64);

/// One counter per field (name, help, value), each labelled with the rows' keys (agent or timer
/// names) under `label`.
fn counter_fields<S>(
    encoder: &mut DescriptorEncoder,
    label: &'static str,
    rows: &std::collections::BTreeMap<String, S>,
    fields: &[CounterField<S>],
) -> Result<(), std::fmt::Error> {
    for (name, help, field) in fields {
        let values = rows.iter().map(|(key, row)| (key.as_str(), field(row)));
        counter_family(encoder, name, help, label, values)?;
    }
    Ok(())
}

/// A counter with one label; nothing at all when there are no values.
fn counter_family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl Iterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let samples = values.map(|(value_label, value)| (value_label, ConstCounter::new(value)));
    family(encoder, name, help, label, samples)
}

/// A metric with one label, one sample per label value; nothing at all when there are none.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    samples: impl Iterator<Item = (&'a str, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let mut metric = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (value_label, sample) in samples {
        let labels: Labels = [(label, value_label)];
        sample.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    seconds: &Seconds,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    seconds.histogram().encode(metric)
}

/// A histogram with one label; nothing at all when there are none.
fn histogram_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    histograms: &[(String, Seconds)],
) -> Result<(), std::fmt::Error> {
    let samples = histograms
        .iter()
        .map(|(value_label, seconds)| (value_label.as_str(), seconds.histogram().clone()));
    family(encoder, name, help, label, samples)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;

    fn state() -> WorkerState {
        WorkerState::new(
            "app",
            "w1",
            "http://h:6066",
            ["say".to_string()],
            ["tick".to_string()],
            Vec::new(),
        )
    }

    #[test]
    fn the_counters_keep_their_names_labels_and_types() {
        let state = state();
        state.agent("say").events_in.fetch_add(3, Ordering::Relaxed);
        state.timer("tick").failures.fetch_add(2, Ordering::Relaxed);
        state.lag.lock().unwrap().insert("t[0]".into(), 7);
        state.commits.fetch_add(5, Ordering::Relaxed);
        let text = render(&state);
        for line in [
            "faust_rs_agent_events_in_total{agent=\"say\"} 3\n",
            "faust_rs_timer_failures_total{timer=\"tick\"} 2\n",
            "faust_rs_consumer_lag{partition=\"t[0]\"} 7\n",
            "# TYPE faust_rs_rebalances_total counter\n",
            "faust_rs_commits_total 5\n",
            "faust_rs_ready 0\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn histograms_count_observations_into_cumulative_buckets() {
        let state = state();
        let durations = &state.agent("say").event_duration;
        durations.observe(Duration::from_millis(3));
        durations.observe(Duration::from_millis(40));
        state.commit_duration.observe(Duration::from_secs(2));
        let text = render(&state);
        for line in [
            "# TYPE faust_rs_event_duration_seconds histogram\n",
            "faust_rs_event_duration_seconds_bucket{agent=\"say\",le=\"0.0025\"} 0\n",
            "faust_rs_event_duration_seconds_bucket{agent=\"say\",le=\"0.005\"} 1\n",
            "faust_rs_event_duration_seconds_bucket{agent=\"say\",le=\"0.05\"} 2\n",
            "faust_rs_event_duration_seconds_bucket{agent=\"say\",le=\"+Inf\"} 2\n",
            "faust_rs_event_duration_seconds_count{agent=\"say\"} 2\n",
            "faust_rs_timer_lateness_seconds_count{timer=\"tick\"} 0\n",
            "faust_rs_commit_duration_seconds_bucket{le=\"1\"} 0\n",
            "faust_rs_commit_duration_seconds_bucket{le=\"2.5\"} 1\n",
            "faust_rs_rebalance_duration_seconds_count 0\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let state = state();
        state.lag.lock().unwrap().insert("a\"b\\c\nd".into(), 1);
        let text = render(&state);
        assert!(
            text.contains("faust_rs_consumer_lag{partition=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
    }

    /// The expressions of the alert rules: `expr: ...` on one line, or a `|` block.
    fn alert_expressions(rules: &str) -> Vec<String> {
        let mut expressions = Vec::new();
        let mut lines = rules.lines().peekable();
        while let Some(line) = lines.next() {
            let Some(expr) = line.trim_start().strip_prefix("expr:") else {
                continue;
            };
            if expr.trim() != "|" {
                expressions.push(expr.trim().to_string());
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let mut block = String::new();
            while let Some(next) = lines.next_if(|l| l.len() - l.trim_start().len() > indent) {
                block.push_str(next.trim());
                block.push('\n');
            }
            expressions.push(block);
        }
        expressions
    }

    #[test]
    fn the_alert_rules_parse_and_use_only_metrics_a_worker_exports() {
        let rules = include_str!("../../deploy/prometheus/alerts.yaml");
        let expressions = alert_expressions(rules);
        assert_eq!(expressions.len(), rules.matches("- alert:").count());
        let mut state = state();
        let (election, _) = crate::election::Election::new(
            "leader",
            "t",
            true,
            Duration::from_secs(1),
            std::sync::Arc::new(
                rdkafka::ClientConfig::new()
                    .create_with_context(crate::kafka::logs::QuietLogs)
                    .unwrap(),
            ),
        );
        state.elections.push(election);
        state.lag.lock().unwrap().insert("t[0]".into(), 1);
        let exported = render(&state);
        for expression in expressions {
            promql_parser::parser::parse(&expression)
                .unwrap_or_else(|e| panic!("{expression}: {e}"));
            for name in expression
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("faust_rs_"))
            {
                assert!(
                    exported.contains(&format!("\n{name}{{")),
                    "{name} (in {expression}) is not exported"
                );
            }
        }
    }
}

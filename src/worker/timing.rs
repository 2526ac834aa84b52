//! Histograms of durations, in seconds, for `/metrics`. Every faust-rs histogram has the same
//! bucket bounds, so one set of dashboards and alert thresholds fits all of them.

use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;

/// Upper bounds of the buckets, in seconds: from half a millisecond (an event or a timer that
/// is on time) to a minute (a rebalance that waited for a session timeout).
pub const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A histogram of durations. Cloning shares it (the exposition holds clones).
#[derive(Debug, Clone)]
pub struct Seconds(Histogram);

impl Default for Seconds {
    fn default() -> Self {
        Seconds(Histogram::new(BUCKETS))
    }
}

impl Seconds {
    pub fn observe(&self, duration: Duration) {
        self.0.observe(duration.as_secs_f64());
    }

    pub fn histogram(&self) -> &Histogram {
        &self.0
    }
}

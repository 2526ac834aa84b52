//! systemd's service notifications (`sd_notify`): `READY=1` once the worker has started (its
//! topics exist, it joined its group, its elections and timers run), `STOPPING=1` when a
//! shutdown begins, and `WATCHDOG=1` keep-alives when the unit sets `WatchdogSec=`. Outside
//! systemd (no `NOTIFY_SOCKET`) nothing is sent.

use std::time::Duration;

use sd_notify::NotifyState;

/// The worker has started: systemd's `Type=notify` start job completes.
pub fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// A shutdown began: systemd shows the unit as deactivating.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// Sends `WATCHDOG=1` every half watchdog interval for as long as the task runs, when systemd
/// asks for them (`WATCHDOG_USEC`). It runs on the control plane's runtime, beside the election heartbeats
/// and the web server: if that runtime is starved or wedged the pings stop and systemd
/// restarts the worker, which is what the watchdog is for.
pub async fn keep_alive() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut ticker = tokio::time::interval((interval / 2).max(Duration::from_millis(10)));
    loop {
        ticker.tick().await;
        notify(&[NotifyState::Watchdog]);
    }
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("cannot notify systemd: {e}");
    }
}

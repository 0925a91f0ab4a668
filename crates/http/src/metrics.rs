//! Prometheus metrics at `/metrics`: requests by route template and status,
//! the database pool, logins and registrations.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use userhub_domain::ports::PoolStatus;
use userhub_domain::services::DispatchRound;

/// Latency buckets in seconds: from a cached read to a slow bcrypt.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process's metrics recorder. Metrics are process-wide (like the
/// `metrics` facade they go through), so every app in a process shares one.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

impl Metrics {
    /// The recorder, installed as the global one at the first call.
    #[must_use]
    pub fn global() -> Self {
        let handle = HANDLE.get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".to_owned()),
                    LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics stays empty");
            }
            describe();
            handle
        });
        Self {
            handle: handle.clone(),
        }
    }

    /// Folds recent histogram samples into their buckets; call every few
    /// seconds so that memory stays flat between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Everything, in Prometheus text format, with the pool as it is now.
    #[must_use]
    pub fn render(&self, pool: PoolStatus) -> String {
        let in_use = pool.size.saturating_sub(pool.idle);
        metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
        metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(in_use));
        metrics::gauge!("db_pool_max_connections").set(f64::from(pool.max));
        self.handle.render()
    }

    /// Counts what a round of the webhook worker did.
    pub fn record_webhook_round(&self, round: &DispatchRound) {
        for (outcome, count) in [
            ("delivered", round.delivered),
            ("retried", round.retried),
            ("failed", round.failed),
        ] {
            if count > 0 {
                metrics::counter!("userhub_webhook_deliveries_total", "outcome" => outcome)
                    .increment(u64::from(count));
            }
        }
    }

    /// The deliveries waiting, and how long the oldest has waited.
    pub fn set_webhook_backlog(&self, pending: u64, oldest_age: Duration) {
        #[allow(clippy::cast_precision_loss)] // a gauge; exact below 2^53
        metrics::gauge!("userhub_webhook_queue_depth").set(pending as f64);
        metrics::gauge!("userhub_webhook_oldest_pending_seconds").set(oldest_age.as_secs_f64());
    }
}

fn describe() {
    metrics::describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route template and status"
    );
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by method, route template and status"
    );
    metrics::describe_gauge!("db_pool_connections", "Open database connections by state");
    metrics::describe_gauge!(
        "db_pool_max_connections",
        "The most connections the pool may open"
    );
    metrics::describe_counter!(
        "userhub_logins_total",
        "Login attempts by outcome: success, failure (bad credentials) or locked (refused during a lockout)"
    );
    metrics::describe_counter!(
        "userhub_users_registered_total",
        "Users created, by way: register or admin"
    );
    metrics::describe_counter!(
        "userhub_webhook_deliveries_total",
        "Webhook delivery attempts by outcome: delivered, retried (failed, tried again later) or failed (given up)"
    );
    metrics::describe_gauge!(
        "userhub_webhook_queue_depth",
        "Webhook deliveries pending for enabled endpoints"
    );
    metrics::describe_gauge!(
        "userhub_webhook_oldest_pending_seconds",
        "Age of the oldest pending webhook delivery's event, 0 when none"
    );
}

/// Counts one served request. Unmatched paths share one label so that
/// scanners cannot grow the label set.
pub(crate) fn record_request(method: &Method, route: Option<&str>, status: u16, elapsed: Duration) {
    let method = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    };
    let route = route.unwrap_or("unmatched").to_owned();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Counts a login attempt's outcome.
pub(crate) fn record_login(outcome: &'static str) {
    metrics::counter!("userhub_logins_total", "outcome" => outcome).increment(1);
}

/// Counts a new user.
pub(crate) fn record_registration(via: &'static str) {
    metrics::counter!("userhub_users_registered_total", "via" => via).increment(1);
}

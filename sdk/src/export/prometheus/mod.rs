//! The Prometheus endpoint: metrics served for scraping at
//! `http://HOST:PORT/metrics` (`OTEL_METRICS_EXPORTER=prometheus`), for
//! PenguiFlow fleets that run Prometheus without a collector.
//!
//! A pull reader (the SDK's `ManualReader`) sits beside any push reader
//! (OTLP, console), so one pipeline can do both; each scrape collects
//! cumulative values at that moment. The exposition is written here
//! (`exposition.rs`, names in `names.rs`), the HTTP side is hyper's server
//! (`server.rs`): loopback by default, an optional bearer token, OpenMetrics
//! with exemplars when the scraper asks for it, the text format otherwise.
//!
//! # Why not opentelemetry-prometheus
//!
//! opentelemetry-prometheus 0.33.1 exists and is maintained again (it was
//! un-deprecated in 0.32). It was weighed against writing the exposition
//! here, and against `prometheus-client`:
//!
//! - **Exemplars.** It encodes through the `prometheus` crate's
//!   `TextEncoder`, which writes the classic text format only: no
//!   OpenMetrics, so no exemplars (its source says as much: "consider
//!   supporting exemplars when `prometheus` crate has the feature"). A
//!   latency bucket that leads to a trace needs OpenMetrics.
//! - **It is no endpoint.** It fills a `prometheus::Registry`; the HTTP
//!   server, the loopback default and the bearer token are still flowtel's
//!   to write, so the crate would save only the text encoding, about 200
//!   lines, for a second metrics data model in the process (the SDK's data
//!   copied into `prometheus::proto` families on every scrape).
//! - **Dependencies.** It brings `prometheus` 0.14, `once_cell`,
//!   `lazy_static`, `parking_lot`, `thiserror` and `fnv`; the code here
//!   needs nothing new (hyper, hyper-util and http-body-util are already
//!   built for reqwest and tonic). It needs the SDK's
//!   `experimental_metrics_custom_reader` feature exactly as this code does.
//! - `prometheus-client` (the Prometheus project's own crate) writes
//!   OpenMetrics with exemplars, but around its own instrument types: the
//!   SDK's collections would have to be re-registered through a custom
//!   collector each scrape, and it builds a proc-macro crate (syn).
//!
//! So flowtel writes the exposition itself, follows the OpenTelemetry
//! specification's naming rules (tested in `names.rs`), and its tests hold
//! it against the real thing: `promtool check metrics` and a real
//! Prometheus server that scrapes it (`cli/tests/prometheus.rs`).

mod exposition;
mod names;
mod server;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};
use tokio::runtime::Handle;

use crate::error::BuildError;
use crate::exemplars::Exemplars;
use crate::privacy::Secret;
use crate::stats::Counters;

/// Where the endpoint listens and what it asks for, resolved by the
/// configuration layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PrometheusSettings {
    /// `localhost` binds the IPv4 loopback.
    pub(crate) host: String,
    /// 0: any free port.
    pub(crate) port: u16,
    pub(crate) token: Option<Secret>,
}

/// The pull reader registered with the meter provider; the endpoint holds
/// the same `ManualReader` and collects from it on every scrape.
#[derive(Debug, Clone)]
pub(crate) struct PullReader(Arc<ManualReader>);

impl MetricReader for PullReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The address to bind: `localhost` is the IPv4 loopback (one address,
/// whatever the resolver prefers), any other host its first address.
fn resolve(s: &PrometheusSettings) -> Result<SocketAddr, BuildError> {
    let host = if s.host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1"
    } else {
        &s.host
    };
    let problem = |p: String| BuildError::InvalidConfig {
        setting: "Prometheus address (OTEL_EXPORTER_PROMETHEUS_HOST)".into(),
        problem: p,
    };
    (host, s.port)
        .to_socket_addrs()
        .map_err(|e| problem(format!("cannot resolve `{}`: {e}", s.host)))?
        .next()
        .ok_or_else(|| problem(format!("`{}` has no address", s.host)))
}

/// Bind the endpoint and serve it on `handle`'s runtime. Returns the reader
/// to register with the meter provider and the bound address (a port of 0
/// becomes the one the system chose).
pub(crate) fn start(
    settings: &PrometheusSettings,
    handle: &Handle,
    exemplars: Option<Arc<Exemplars>>,
    stats: &Arc<Counters>,
) -> Result<(PullReader, SocketAddr), BuildError> {
    let addr = resolve(settings)?;
    let bind_error = |e: std::io::Error| {
        BuildError::Exporter(format!("cannot serve Prometheus metrics on {addr}: {e}"))
    };
    let listener = TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let listener = {
        let _enter = handle.enter();
        tokio::net::TcpListener::from_std(listener).map_err(bind_error)?
    };
    if settings.token.is_none() && server::is_public(&bound) {
        eprintln!(
            "flowtel: warning: Prometheus metrics on {bound} are open to anyone who can reach \
             that address; keep the endpoint on loopback or set a bearer token \
             (FLOWTEL_PROMETHEUS_BEARER_TOKEN)"
        );
    }
    let reader = Arc::new(ManualReader::builder().build());
    let endpoint = server::Endpoint {
        reader: reader.clone(),
        exemplars,
        token: settings.token.clone(),
        stats: stats.clone(),
    };
    handle.spawn(server::serve(listener, Arc::new(endpoint)));
    Ok((PullReader(reader), bound))
}

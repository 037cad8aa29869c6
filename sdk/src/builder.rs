//! The builder: the public settings, resolved against the environment and
//! the defaults by [`FlowtelBuilder::build`], which starts the pipeline.
//! Nothing below it imports it.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::trace::SpanData;

use crate::config::{Config, Exporter, MetricsTo, SpansTo, Target};
use crate::error::BuildError;
use crate::export::InMemory;
use crate::export::Protocol;
use crate::pipeline::Flowtel;
use crate::privacy::{secret_word, Secret};

impl Flowtel {
    /// A builder with every setting at its default (see [`FlowtelBuilder`]).
    pub fn builder() -> FlowtelBuilder {
        FlowtelBuilder::default()
    }
}

/// Builds a [`Flowtel`](crate::Flowtel) pipeline.
///
/// Settings made here win over the standard OpenTelemetry environment
/// variables, which win over the defaults (see the crate docs for the table).
///
/// ```
/// use std::time::Duration;
/// let flowtel = flowtel::Flowtel::builder()
///     .with_service_name("checkout-worker")
///     .with_flow_name("checkout")
///     .with_console()
///     .build()
///     .unwrap();
/// flowtel.shutdown(Duration::from_secs(5)).unwrap();
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct FlowtelBuilder {
    pub(crate) config: Config,
}

impl FlowtelBuilder {
    /// Export over OTLP to `endpoint`: for gRPC `http://host:4317`, for
    /// HTTP the base URL `http://host:4318` (`/v1/traces` and `/v1/metrics`
    /// are appended). Overrides `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.config.endpoint = Some(endpoint.into());
        self.config.target = Some(Target::Otlp);
        self
    }

    /// OTLP transport; overrides `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = Some(protocol);
        self
    }

    /// Add a header (gRPC metadata) to every export request, e.g. an API key.
    /// Added to those of `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.push((key.into(), value.into()));
        self
    }

    /// Trust these CA certificates (PEM) for a TLS (`https://`) endpoint,
    /// in addition to the system's; overrides `OTEL_EXPORTER_OTLP_CERTIFICATE`
    /// (a file). For collectors behind a private CA.
    pub fn with_ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config.ca_pem = Some(pem.into());
        self
    }

    /// Timeout of one export request; overrides `OTEL_EXPORTER_OTLP_TIMEOUT`.
    pub fn with_export_timeout(mut self, timeout: Duration) -> Self {
        self.config.export_timeout = Some(timeout);
        self
    }

    /// Print spans and metrics to standard output instead of exporting.
    pub fn with_console(mut self) -> Self {
        self.config.target = Some(Target::Console);
        self
    }

    /// Keep everything in memory, for tests (see [`InMemory`]).
    pub fn with_in_memory(mut self, sink: &InMemory) -> Self {
        self.config.target = Some(Target::InMemory(sink.clone()));
        self
    }

    /// Hand every batch of finished spans to `f`, on flowtel's export
    /// thread, instead of exporting them; metrics are not exported unless
    /// an exporter is chosen for them
    /// ([`with_metrics_exporters`](FlowtelBuilder::with_metrics_exporters)
    /// or `OTEL_METRICS_EXPORTER`). For
    /// custom sinks and local views (the `flowtel` command's terminal
    /// waterfall is built this way).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let names = Arc::new(Mutex::new(Vec::new()));
    /// let sink = names.clone();
    /// let flowtel = flowtel::Flowtel::builder()
    ///     .with_span_callback(move |spans| {
    ///         sink.lock().unwrap().extend(spans.into_iter().map(|s| s.name.to_string()))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
    /// ```
    pub fn with_span_callback(mut self, f: impl Fn(Vec<SpanData>) + Send + Sync + 'static) -> Self {
        self.config.target = Some(Target::Callback(Arc::new(f)));
        self
    }

    /// Where spans go: [`Exporter::Otlp`], [`Exporter::Console`] or
    /// [`Exporter::None`]; overrides `OTEL_TRACES_EXPORTER`, and wins over
    /// [`with_console`](FlowtelBuilder::with_console),
    /// [`with_in_memory`](FlowtelBuilder::with_in_memory) and
    /// [`with_span_callback`](FlowtelBuilder::with_span_callback) for spans.
    /// Without it: those, else `OTEL_TRACES_EXPORTER`, else OTLP when an
    /// endpoint is configured, else the console. (`Exporter::Prometheus`
    /// takes metrics only: `build()` refuses it here.)
    pub fn with_traces_exporter(mut self, exporter: Exporter) -> Self {
        self.config.traces_exporter = Some(exporter);
        self
    }

    /// Where metrics go, any of [`Exporter::Otlp`], [`Exporter::Console`],
    /// [`Exporter::Prometheus`]; an empty list (or `[Exporter::None]`) turns
    /// them off, e.g. for a backend that takes traces only. Overrides
    /// `OTEL_METRICS_EXPORTER` (`otlp,prometheus`, `none`, ...). Without it:
    /// [`with_console`](FlowtelBuilder::with_console) or
    /// [`with_in_memory`](FlowtelBuilder::with_in_memory), else
    /// `OTEL_METRICS_EXPORTER`, else OTLP when an endpoint is configured,
    /// else the console (none with a span callback).
    ///
    /// ```no_run
    /// use flowtel::Exporter;
    /// let flowtel = flowtel::Flowtel::builder()
    ///     .with_endpoint("http://phoenix:4317") // takes traces only
    ///     .with_metrics_exporters([Exporter::Prometheus])
    ///     .build()?;
    /// println!("scrape http://{}/metrics", flowtel.prometheus_address().unwrap());
    /// # Ok::<(), flowtel::BuildError>(())
    /// ```
    pub fn with_metrics_exporters(mut self, exporters: impl IntoIterator<Item = Exporter>) -> Self {
        let list: Vec<Exporter> = exporters.into_iter().collect();
        self.config.metrics_exporters = Some(match list.as_slice() {
            [Exporter::None] => Vec::new(),
            _ => list,
        });
        self
    }

    /// Where the Prometheus endpoint listens, `HOST:PORT` (port 0: any free
    /// port, see [`Flowtel::prometheus_address`](crate::Flowtel::prometheus_address));
    /// overrides `OTEL_EXPORTER_PROMETHEUS_HOST` / `_PORT`. Default
    /// `localhost:9464`: loopback only. Used when metrics go to
    /// [`Exporter::Prometheus`].
    pub fn with_prometheus_address(mut self, address: impl Into<String>) -> Self {
        self.config.prometheus_address = Some(address.into());
        self
    }

    /// Require `Authorization: Bearer <token>` on the Prometheus endpoint
    /// (anything else is answered 401); overrides
    /// `FLOWTEL_PROMETHEUS_BEARER_TOKEN`. Without a token the endpoint is
    /// open to whoever can reach its address, so keep it on loopback.
    pub fn with_prometheus_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.config.prometheus_token = Some(Secret(token.into()));
        self
    }

    /// Where spans will go if built now, from the settings so far, the
    /// environment and the defaults (see
    /// [`with_traces_exporter`](FlowtelBuilder::with_traces_exporter));
    /// `None` when a local destination was chosen in code (in memory, a
    /// callback). For programs that present spans themselves when they
    /// would go to the console (the `flowtel` command's terminal view).
    ///
    /// ```
    /// use flowtel::Exporter;
    /// let b = flowtel::Flowtel::builder().with_traces_exporter(Exporter::None);
    /// assert_eq!(b.traces_exporter().unwrap(), Some(Exporter::None));
    /// ```
    pub fn traces_exporter(&self) -> Result<Option<Exporter>, BuildError> {
        Ok(match self.config.routes()?.spans {
            SpansTo::Otlp => Some(Exporter::Otlp),
            SpansTo::Console => Some(Exporter::Console),
            SpansTo::None => Some(Exporter::None),
            SpansTo::InMemory(_) | SpansTo::Callback(_) => None,
        })
    }

    /// Where metrics will go if built now (empty: nowhere), like
    /// [`traces_exporter`](FlowtelBuilder::traces_exporter); in-memory
    /// metrics are left out.
    pub fn metrics_exporters(&self) -> Result<Vec<Exporter>, BuildError> {
        let routes = self.config.routes()?;
        Ok(routes
            .metrics
            .iter()
            .filter_map(|m| match m {
                MetricsTo::Otlp => Some(Exporter::Otlp),
                MetricsTo::Console => Some(Exporter::Console),
                MetricsTo::Prometheus(_) => Some(Exporter::Prometheus),
                MetricsTo::InMemory(_) => None,
            })
            .collect())
    }

    /// `service.name` of the resource; overrides `OTEL_SERVICE_NAME`.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.config.service_name = Some(name.into());
        self
    }

    /// Name of the flow: the root span's name and `flow.name` (default `flow`).
    pub fn with_flow_name(mut self, name: impl Into<String>) -> Self {
        self.config.flow_name = Some(name.into());
        self
    }

    /// Metric export interval; overrides `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s).
    pub fn with_metric_interval(mut self, interval: Duration) -> Self {
        self.config.metric_interval = Some(interval);
        self
    }

    /// Capacity of the queue between `record()` and the mapping thread
    /// (default 16 384 events). A full queue drops the event and counts it.
    pub fn with_queue_capacity(mut self, events: usize) -> Self {
        self.config.queue_capacity = events.max(1);
        self
    }

    /// Spans kept while the collector is slow or down (default 24 576). Beyond
    /// this, new spans are dropped and counted.
    pub fn with_max_buffered_spans(mut self, spans: usize) -> Self {
        self.config.max_buffered_spans = spans.max(1);
        self
    }

    /// When the span buffer is full, make the mapping thread wait for the
    /// exporter instead of dropping spans; the event queue then fills up and
    /// [`Flowtel::record_wait`](crate::Flowtel::record_wait) waits too. For
    /// bridges and log replays that must lose nothing and can slow down; a
    /// flow runtime should keep the default (drop and count), so that a slow
    /// collector never slows the flow. An exporter that makes no progress
    /// for 60 s is given up on (spans dropped and counted).
    pub fn with_backpressure(mut self, enabled: bool) -> Self {
        self.config.backpressure = enabled;
        self
    }

    /// A run's root span is ended and exported once no event of that run has
    /// arrived for this long (default 30 s). See also
    /// [`Flowtel::end_run`](crate::Flowtel::end_run).
    pub fn with_run_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.run_idle_timeout = timeout;
        self
    }

    /// A node whose results go to the flow's caller (PenguiFlow: `.to()`
    /// with no successor): its `node_success` ends the run at once, its
    /// root span exported then, when the event says nothing of the run is
    /// left (`trace_pending` at most 2: its input and its result;
    /// `trace_inflight` 0). Call once per such node. Terminal failures,
    /// deadline skips and cancellations end a run by themselves, with no
    /// setting; a successful run needs this, since its last `node_success`
    /// looks like any other's. See the crate docs, "When a run ends".
    ///
    /// ```
    /// let flowtel = flowtel::Flowtel::builder()
    ///     .with_console()
    ///     .with_run_end_node("respond")
    ///     .build()
    ///     .unwrap();
    /// # flowtel.shutdown(std::time::Duration::from_secs(1)).unwrap();
    /// ```
    pub fn with_run_end_node(mut self, node_name: impl Into<String>) -> Self {
        self.config.run_end_nodes.push(node_name.into());
        self
    }

    /// Open runs tracked at once (default 10 000); the least recently active
    /// runs are ended early (a tenth at a time) when a new one would exceed
    /// this, and counted in `flowtel.sdk.state.shed`.
    pub fn with_max_open_runs(mut self, runs: usize) -> Self {
        self.config.max_open_runs = runs.max(1);
        self
    }

    /// How long an attempt may stay open (started, no terminal event) before
    /// it is given up: exported as `incomplete` and counted in
    /// `flowtel.sdk.state.shed` (default 1 h). A run with an attempt open
    /// younger than this is never ended for being idle, so a node that
    /// runs for minutes keeps its run whole.
    pub fn with_max_attempt_age(mut self, age: Duration) -> Self {
        self.config.max_attempt_age = age;
        self
    }

    /// One budget over all the mapping's state (default 100 000 units: each
    /// open run, each node of a run and each open attempt is one unit, about
    /// 200 bytes). Beyond it the least recently active runs are ended early
    /// and counted in `flowtel.sdk.state.shed`.
    pub fn with_state_budget(mut self, units: usize) -> Self {
        self.config.state_budget = units.max(16);
        self
    }

    /// This pipeline sees only part of its runs (one of several processes
    /// or bridges fed by one flow): instead of each run's root span it
    /// exports a *partial run span*, with an id of its own, as a child of
    /// the root, holding the run events it saw. Exactly one pipeline per run
    /// should keep the default (`false`) and own the root; see the crate docs.
    pub fn with_partial_runs(mut self, enabled: bool) -> Self {
        self.config.partial_runs = enabled;
        self
    }

    /// Distinct attribute sets (series) each flowtel metric may have
    /// (default 2 000, the OTel SDK's default). Further sets are recorded
    /// under `otel.metric.overflow=true` and counted in
    /// `flowtel.sdk.cardinality.overflow`; the SDK's own limit is sized
    /// above this so that it never overflows silently.
    pub fn with_max_series_per_metric(mut self, series: usize) -> Self {
        self.config.max_series = series.max(1);
        self
    }

    /// Distinct values each bounded metric attribute may take (default 1 000);
    /// later values are recorded as `_overflow` and counted.
    pub fn with_cardinality_limit(mut self, values: usize) -> Self {
        self.config.cardinality_limit = values.max(1);
        self
    }

    /// Add `flow.tenant` (from `extra.tenant`) to metric points. Off by
    /// default: only enable it when the tenant set is small.
    pub fn with_tenant_metrics(mut self, enabled: bool) -> Self {
        self.config.tenant_metrics = enabled;
        self
    }

    /// Allow an `extra` key's scalar values onto metric points (bounded by the
    /// cardinality limit). Nothing from `extra` reaches metrics otherwise.
    pub fn with_metric_extra_key(mut self, key: impl Into<String>) -> Self {
        self.config.metric_extra_keys.push(key.into());
        self
    }

    /// Copy an `extra` key's scalar values onto node attempt spans as
    /// `flow.extra.<key>` (strings truncated to `with_max_attribute_len`).
    /// Nothing from `extra` is exported otherwise. Keys that look like
    /// secrets (`password`, `token`, `api_key`, `cookie`, ...) are refused at
    /// build time, here and in
    /// [`with_metric_extra_key`](FlowtelBuilder::with_metric_extra_key).
    pub fn with_span_extra_key(mut self, key: impl Into<String>) -> Self {
        self.config.span_extra_keys.push(key.into());
        self
    }

    /// Longest string attribute taken from event data (exception and error
    /// messages), in bytes (default 256).
    pub fn with_max_attribute_len(mut self, bytes: usize) -> Self {
        self.config.max_attribute_len = bytes;
        self
    }

    /// Most spans per export request (default 2048). Up to four requests
    /// are in flight at once.
    pub fn with_max_export_batch(mut self, spans: usize) -> Self {
        self.config.max_export_batch = spans.max(1);
        self
    }

    /// Build the pipeline: starts its mapping thread and, for OTLP, its own
    /// export runtime. Works from plain sync code and from inside any tokio
    /// runtime.
    pub fn build(self) -> Result<crate::Flowtel, BuildError> {
        let keys = self.config.span_extra_keys.iter();
        for key in keys.chain(&self.config.metric_extra_keys) {
            if let Some(word) = secret_word(key) {
                return Err(BuildError::InvalidConfig {
                    setting: format!("extra key `{key}`"),
                    problem: format!(
                        "looks like a secret (`{word}`); flowtel never exports such keys"
                    ),
                });
            }
        }
        crate::pipeline::Flowtel::start(self.config)
    }
}

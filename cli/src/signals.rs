//! Where each signal goes for `flowtel ingest`: the exporter flags become
//! builder settings (the SDK resolves the `OTEL_*_EXPORTER` variables
//! itself, flags win), spans that would go to the console are shown in the
//! terminal view instead, and the summary names each destination.

use std::net::SocketAddr;

use flowtel::{Exporter, Flowtel, FlowtelBuilder};

use crate::args::Ingest;

/// Apply the exporter and Prometheus flags to `b`.
pub(crate) fn configure(a: &Ingest, mut b: FlowtelBuilder) -> Result<FlowtelBuilder, String> {
    if let Some(e) = a.traces_exporter {
        b = b.with_traces_exporter(e);
    }
    if let Some(list) = &a.metrics_exporter {
        b = b.with_metrics_exporters(list.iter().copied());
    }
    if let Some(addr) = &a.prometheus_address {
        b = b.with_prometheus_address(addr.clone());
    }
    if let Some(path) = &a.prometheus_token_file {
        let token = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(format!("the token file {} is empty", path.display()));
        }
        b = b.with_prometheus_bearer_token(token);
    }
    let metrics = b.metrics_exporters().map_err(|e| e.to_string())?;
    let prometheus_flags = a.prometheus_address.is_some() || a.prometheus_token_file.is_some();
    if prometheus_flags && !metrics.contains(&Exporter::Prometheus) {
        return Err("--prometheus-address and --prometheus-token-file need \
             --metrics-exporter prometheus (or OTEL_METRICS_EXPORTER=prometheus)"
            .into());
    }
    Ok(b)
}

/// Whether spans go to the terminal view: where the SDK would print them.
pub(crate) fn terminal_view(b: &FlowtelBuilder) -> Result<bool, String> {
    Ok(b.traces_exporter().map_err(|e| e.to_string())? == Some(Exporter::Console))
}

/// The Prometheus endpoint's URL.
pub(crate) fn metrics_url(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}

/// Where each signal went, for the summary: (traces, metrics).
pub(crate) struct Destinations {
    pub(crate) traces: String,
    pub(crate) metrics: String,
}

impl Destinations {
    /// From what the builder resolved, the OTLP endpoint named in flags or
    /// the environment, and the built pipeline.
    pub(crate) fn new(
        traces: Option<Exporter>,
        metrics: &[Exporter],
        endpoint: Option<&str>,
        flowtel: &Flowtel,
    ) -> Self {
        let otlp = || match endpoint {
            Some(e) => format!("OTLP {e}"),
            None => "OTLP (the default endpoint)".to_string(),
        };
        let traces = match traces {
            Some(Exporter::Otlp) => otlp(),
            Some(Exporter::None) => "none (traces exporter `none`)".into(),
            _ => "the terminal (set --endpoint or OTEL_EXPORTER_OTLP_ENDPOINT to export)".into(),
        };
        let scrapes = flowtel.stats().prometheus_scrapes;
        let metrics: Vec<String> = metrics
            .iter()
            .map(|m| match m {
                Exporter::Otlp => otlp(),
                Exporter::Prometheus => match flowtel.prometheus_address() {
                    Some(a) if scrapes == 0 => format!(
                        "Prometheus {} (never scraped: without --follow the endpoint \
                         closes when the input ends)",
                        metrics_url(a)
                    ),
                    Some(a) => format!("Prometheus {} ({scrapes} scrapes)", metrics_url(a)),
                    None => "Prometheus (not served)".into(),
                },
                other => other.to_string(),
            })
            .collect();
        let metrics = if metrics.is_empty() {
            "none".to_string()
        } else {
            metrics.join(", ")
        };
        Destinations { traces, metrics }
    }
}

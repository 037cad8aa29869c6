//! Keyword settings of `flowtel.Flowtel(...)` and `flowtel.middleware(...)`,
//! applied to a [`FlowtelBuilder`].
//!
//! Only what is given here is set on the builder: everything else comes
//! from the `OTEL_*` variables or the defaults, which the builder resolves
//! itself (code wins over the environment), so there is one configuration
//! path for Rust and Python. `None` means "not set".

use std::time::Duration;

use flowtel::{Exporter, FlowtelBuilder, Protocol};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

/// How long the exit hook waits for a pipeline to deliver what it holds,
/// unless `exit_timeout` says otherwise (the Rust SDK's drop flush uses the
/// same bound).
pub(crate) const DEFAULT_EXIT_TIMEOUT: Duration = flowtel::DROP_FLUSH_TIMEOUT;

/// Every setting, in the order the docs list them.
pub(crate) const NAMES: &[&str] = &[
    "service_name",
    "flow_name",
    "endpoint",
    "protocol",
    "headers",
    "timeout",
    "console",
    "traces_exporter",
    "metrics_exporters",
    "prometheus_address",
    "prometheus_bearer_token",
    "span_extra_keys",
    "metric_extra_keys",
    "tenant_metrics",
    "partial_runs",
    "metric_interval",
    "run_end_nodes",
    "run_idle_timeout",
    "max_attempt_age",
    "queue_capacity",
    "max_buffered_spans",
    "max_open_runs",
    "state_budget",
    "cardinality_limit",
    "max_series_per_metric",
    "max_attribute_len",
    "ca_certificate",
    "exit_timeout",
];

/// The settings, parsed: the builder and what the Python side keeps.
pub(crate) struct Settings {
    pub(crate) builder: FlowtelBuilder,
    pub(crate) exit_timeout: Duration,
}

/// Apply `settings` (keyword arguments) to a fresh builder.
pub(crate) fn parse(settings: Option<&Bound<'_, PyDict>>) -> PyResult<Settings> {
    let mut s = Settings {
        builder: flowtel::Flowtel::builder(),
        exit_timeout: DEFAULT_EXIT_TIMEOUT,
    };
    let Some(settings) = settings else {
        return Ok(s);
    };
    for (key, value) in settings.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            if NAMES.contains(&key.as_str()) {
                continue;
            }
            return Err(unknown(&key));
        }
        apply(&mut s, &key, &value)?;
    }
    Ok(s)
}

fn unknown(key: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "unknown flowtel setting `{key}`; the settings are: {}",
        NAMES.join(", ")
    ))
}

fn apply(s: &mut Settings, key: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
    let b = std::mem::take(&mut s.builder);
    s.builder = match key {
        "service_name" => b.with_service_name(string(key, v)?),
        "flow_name" => b.with_flow_name(string(key, v)?),
        "endpoint" => b.with_endpoint(string(key, v)?),
        "protocol" => b.with_protocol(protocol(v)?),
        "headers" => pairs(key, v)?
            .into_iter()
            .fold(b, |b, (k, v)| b.with_header(k, v)),
        "timeout" => b.with_export_timeout(seconds(key, v)?),
        "console" if flag(key, v)? => b.with_console(),
        "console" => b,
        "traces_exporter" => b.with_traces_exporter(exporter(key, &string(key, v)?)?),
        "metrics_exporters" => b.with_metrics_exporters(
            strings(key, v)?
                .iter()
                .map(|e| exporter(key, e))
                .collect::<PyResult<Vec<_>>>()?,
        ),
        "prometheus_address" => b.with_prometheus_address(string(key, v)?),
        "prometheus_bearer_token" => b.with_prometheus_bearer_token(string(key, v)?),
        "span_extra_keys" => strings(key, v)?
            .into_iter()
            .fold(b, FlowtelBuilder::with_span_extra_key),
        "metric_extra_keys" => strings(key, v)?
            .into_iter()
            .fold(b, FlowtelBuilder::with_metric_extra_key),
        "tenant_metrics" => b.with_tenant_metrics(flag(key, v)?),
        "partial_runs" => b.with_partial_runs(flag(key, v)?),
        "metric_interval" => b.with_metric_interval(seconds(key, v)?),
        "run_end_nodes" => strings(key, v)?
            .into_iter()
            .fold(b, FlowtelBuilder::with_run_end_node),
        "run_idle_timeout" => b.with_run_idle_timeout(seconds(key, v)?),
        "max_attempt_age" => b.with_max_attempt_age(seconds(key, v)?),
        "queue_capacity" => b.with_queue_capacity(count(key, v)?),
        "max_buffered_spans" => b.with_max_buffered_spans(count(key, v)?),
        "max_open_runs" => b.with_max_open_runs(count(key, v)?),
        "state_budget" => b.with_state_budget(count(key, v)?),
        "cardinality_limit" => b.with_cardinality_limit(count(key, v)?),
        "max_series_per_metric" => b.with_max_series_per_metric(count(key, v)?),
        "max_attribute_len" => b.with_max_attribute_len(count(key, v)?),
        "ca_certificate" => b.with_ca_certificate(pem(key, v)?),
        "exit_timeout" => {
            s.exit_timeout = seconds(key, v)?;
            b
        }
        _ => return Err(unknown(key)),
    };
    Ok(())
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn string(key: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "flowtel setting `{key}` takes a str, got {}",
            type_name(v)
        ))),
    }
}

fn protocol(v: &Bound<'_, PyAny>) -> PyResult<Protocol> {
    match string("protocol", v)?.trim() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        other => Err(PyValueError::new_err(format!(
            "flowtel setting `protocol`: `{other}` is not supported (use \"grpc\" or \"http/protobuf\")"
        ))),
    }
}

/// An exporter's word, as in `OTEL_TRACES_EXPORTER` (`otlp`, `console`,
/// `prometheus`, `none`).
fn exporter(key: &str, word: &str) -> PyResult<Exporter> {
    word.parse()
        .map_err(|e| PyValueError::new_err(format!("flowtel setting `{key}`: {e}")))
}

fn flag(key: &str, v: &Bound<'_, PyAny>) -> PyResult<bool> {
    v.extract::<bool>().map_err(|_| {
        PyTypeError::new_err(format!(
            "flowtel setting `{key}` takes a bool, got {}",
            type_name(v)
        ))
    })
}

fn seconds(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let s: f64 = v.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "flowtel setting `{key}` takes seconds (a number), got {}",
            type_name(v)
        ))
    })?;
    Duration::try_from_secs_f64(s).map_err(|_| {
        PyValueError::new_err(format!(
            "flowtel setting `{key}` must be a finite number of seconds >= 0, got {s}"
        ))
    })
}

fn count(key: &str, v: &Bound<'_, PyAny>) -> PyResult<usize> {
    v.extract::<usize>().map_err(|_| {
        PyValueError::new_err(format!(
            "flowtel setting `{key}` takes a non-negative int, got {}",
            v.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}

/// A list (any iterable) of str, but not a str itself: `"exception"` would
/// otherwise become nine one-letter keys.
fn strings(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if v.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "flowtel setting `{key}` takes a list of str, not a single str"
        )));
    }
    v.try_iter()?.map(|item| string(key, &item?)).collect()
}

/// A mapping of str to str (`{"x-api-key": "..."}`).
fn pairs(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let items = v.call_method0("items").map_err(|_| {
        PyTypeError::new_err(format!(
            "flowtel setting `{key}` takes a mapping of str to str, got {}",
            type_name(v)
        ))
    })?;
    items
        .try_iter()?
        .map(|item| {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            Ok((string(key, &k)?, string(key, &v)?))
        })
        .collect()
}

/// PEM text, as str or bytes.
fn pem(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Ok(string(key, v)?.into_bytes())
}

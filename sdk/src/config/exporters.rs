//! Which exporter each signal goes to (`OTEL_TRACES_EXPORTER`,
//! `OTEL_METRICS_EXPORTER`), and where the Prometheus endpoint listens
//! (`OTEL_EXPORTER_PROMETHEUS_HOST` / `_PORT`).
//!
//! Per signal, the first that applies wins:
//!
//! 1. the builder's [`with_traces_exporter`] / [`with_metrics_exporters`];
//! 2. a local destination chosen in code ([`with_console`],
//!    [`with_in_memory`]; [`with_span_callback`] for spans only);
//! 3. the environment variable;
//! 4. OTLP when an endpoint is configured (code or environment), else the
//!    console (metrics of a span callback: none).
//!
//! An endpoint set in code ([`with_endpoint`], the command's `--endpoint`)
//! says where OTLP goes, not which signals: `OTEL_METRICS_EXPORTER=none`
//! still turns metrics off for a traces-only backend.
//!
//! [`with_traces_exporter`]: crate::FlowtelBuilder::with_traces_exporter
//! [`with_metrics_exporters`]: crate::FlowtelBuilder::with_metrics_exporters
//! [`with_console`]: crate::FlowtelBuilder::with_console
//! [`with_in_memory`]: crate::FlowtelBuilder::with_in_memory
//! [`with_span_callback`]: crate::FlowtelBuilder::with_span_callback
//! [`with_endpoint`]: crate::FlowtelBuilder::with_endpoint

use std::env;
use std::fmt;
use std::str::FromStr;

use super::{env_endpoint_set, Config, Target};
use crate::error::BuildError;
use crate::export::{InMemory, PrometheusSettings, SpanCallback};
use crate::privacy::Secret;

/// An exporter a signal can go to: the values of the standard
/// `OTEL_TRACES_EXPORTER` and `OTEL_METRICS_EXPORTER` variables.
///
/// ```
/// use flowtel::Exporter;
/// assert_eq!("prometheus".parse::<Exporter>(), Ok(Exporter::Prometheus));
/// assert_eq!(Exporter::None.to_string(), "none");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exporter {
    /// OTLP to the configured endpoint (`otlp`).
    Otlp,
    /// Printed to standard output (`console`).
    Console,
    /// Served on a Prometheus scrape endpoint (`prometheus`; metrics only).
    Prometheus,
    /// Not exported at all (`none`).
    None,
}

impl Exporter {
    /// The value's word in `OTEL_*_EXPORTER`.
    pub fn as_str(self) -> &'static str {
        match self {
            Exporter::Otlp => "otlp",
            Exporter::Console => "console",
            Exporter::Prometheus => "prometheus",
            Exporter::None => "none",
        }
    }
}

impl fmt::Display for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Exporter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "otlp" => Ok(Exporter::Otlp),
            "console" => Ok(Exporter::Console),
            "prometheus" => Ok(Exporter::Prometheus),
            "none" => Ok(Exporter::None),
            other => Err(format!(
                "unknown exporter `{other}` (use otlp, console, prometheus or none)"
            )),
        }
    }
}

/// Where spans go, resolved.
#[derive(Clone)]
pub(crate) enum SpansTo {
    Otlp,
    Console,
    InMemory(InMemory),
    Callback(SpanCallback),
    /// Nowhere: the mapping still runs (metrics need it), its spans are
    /// discarded before the buffer.
    None,
}

/// One place metrics go, resolved.
#[derive(Clone)]
pub(crate) enum MetricsTo {
    Otlp,
    Console,
    InMemory(InMemory),
    Prometheus(PrometheusSettings),
}

/// Every signal's destination.
#[derive(Clone)]
pub(crate) struct Routes {
    pub(crate) spans: SpansTo,
    /// Empty: metrics are recorded and go nowhere.
    pub(crate) metrics: Vec<MetricsTo>,
}

const TRACES_VAR: &str = "OTEL_TRACES_EXPORTER";
const METRICS_VAR: &str = "OTEL_METRICS_EXPORTER";
/// The bearer token the Prometheus endpoint asks for (no standard variable).
pub(crate) const TOKEN_VAR: &str = "FLOWTEL_PROMETHEUS_BEARER_TOKEN";
const DEFAULT_PROMETHEUS_PORT: u16 = 9464;

fn invalid(setting: &str, problem: impl Into<String>) -> BuildError {
    BuildError::InvalidConfig {
        setting: setting.to_string(),
        problem: problem.into(),
    }
}

/// A list of exporters (`otlp,prometheus`), checked: known words, no `none`
/// beside another exporter. `none` alone is the empty list.
fn parse_list(setting: &str, value: &str) -> Result<Vec<Exporter>, BuildError> {
    let mut out = Vec::new();
    for word in value.split(',').filter(|w| !w.trim().is_empty()) {
        let e = word.parse::<Exporter>().map_err(|e| invalid(setting, e))?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    check_list(setting, &out)?;
    out.retain(|e| *e != Exporter::None);
    Ok(out)
}

fn check_list(setting: &str, list: &[Exporter]) -> Result<(), BuildError> {
    if list.contains(&Exporter::None) && list.len() > 1 {
        return Err(invalid(
            setting,
            "`none` cannot be combined with other exporters",
        ));
    }
    Ok(())
}

fn env_value(var: &str) -> Option<String> {
    env::var(var).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Where each signal goes (see the module docs for the order).
    pub(crate) fn routes(&self) -> Result<Routes, BuildError> {
        Ok(Routes {
            spans: self.spans_to()?,
            metrics: self.metrics_to()?,
        })
    }

    fn endpoint_configured(&self) -> bool {
        self.endpoint.is_some() || env_endpoint_set()
    }

    fn spans_to(&self) -> Result<SpansTo, BuildError> {
        let chosen = match (self.traces_exporter, &self.target) {
            (Some(e), _) => e,
            (None, Some(Target::Console)) => return Ok(SpansTo::Console),
            (None, Some(Target::InMemory(m))) => return Ok(SpansTo::InMemory(m.clone())),
            (None, Some(Target::Callback(f))) => return Ok(SpansTo::Callback(f.clone())),
            (None, _) => match env_value(TRACES_VAR) {
                Some(v) => {
                    let list = parse_list(TRACES_VAR, &v)?;
                    match list.as_slice() {
                        [] => Exporter::None,
                        [one] => *one,
                        _ => {
                            return Err(invalid(
                                TRACES_VAR,
                                format!("`{v}`: flowtel sends traces to one exporter"),
                            ))
                        }
                    }
                }
                None if self.endpoint_configured() => Exporter::Otlp,
                None => Exporter::Console,
            },
        };
        match chosen {
            Exporter::Otlp => Ok(SpansTo::Otlp),
            Exporter::Console => Ok(SpansTo::Console),
            Exporter::None => Ok(SpansTo::None),
            Exporter::Prometheus => Err(invalid(
                TRACES_VAR,
                "`prometheus` takes metrics only (use otlp, console or none for traces)",
            )),
        }
    }

    fn metrics_to(&self) -> Result<Vec<MetricsTo>, BuildError> {
        let chosen: Vec<Exporter> = match (&self.metrics_exporters, &self.target) {
            (Some(list), _) => {
                check_list("with_metrics_exporters", list)?;
                list.clone()
            }
            (None, Some(Target::Console)) => return Ok(vec![MetricsTo::Console]),
            (None, Some(Target::InMemory(m))) => return Ok(vec![MetricsTo::InMemory(m.clone())]),
            (None, _) => match env_value(METRICS_VAR) {
                Some(v) => parse_list(METRICS_VAR, &v)?,
                // A span callback is a local view of spans: its metrics
                // go nowhere unless asked for.
                None if matches!(self.target, Some(Target::Callback(_))) => Vec::new(),
                None if self.endpoint_configured() => vec![Exporter::Otlp],
                None => vec![Exporter::Console],
            },
        };
        let mut out = Vec::new();
        for e in chosen {
            out.push(match e {
                Exporter::Otlp => MetricsTo::Otlp,
                Exporter::Console => MetricsTo::Console,
                Exporter::Prometheus => MetricsTo::Prometheus(self.prometheus()?),
                Exporter::None => continue,
            });
        }
        Ok(out)
    }

    /// The Prometheus endpoint's settings: the address set in code, else
    /// `OTEL_EXPORTER_PROMETHEUS_HOST` / `_PORT`, else `localhost:9464`
    /// (loopback); the token set in code, else
    /// `FLOWTEL_PROMETHEUS_BEARER_TOKEN`, else none.
    pub(crate) fn prometheus(&self) -> Result<PrometheusSettings, BuildError> {
        let (host, port) = match &self.prometheus_address {
            Some(addr) => split_host_port(addr).ok_or_else(|| {
                invalid(
                    "with_prometheus_address",
                    format!("`{addr}` is not HOST:PORT"),
                )
            })?,
            None => {
                let host = env_value("OTEL_EXPORTER_PROMETHEUS_HOST")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|| "localhost".into());
                let port = match env_value("OTEL_EXPORTER_PROMETHEUS_PORT") {
                    Some(p) => p.trim().parse::<u16>().map_err(|_| {
                        invalid(
                            "OTEL_EXPORTER_PROMETHEUS_PORT",
                            format!("`{p}` is not a port"),
                        )
                    })?,
                    None => DEFAULT_PROMETHEUS_PORT,
                };
                (host, port)
            }
        };
        let token = self
            .prometheus_token
            .clone()
            .or_else(|| env_value(TOKEN_VAR).map(|t| Secret(t.trim().to_string())));
        if token.as_ref().is_some_and(|t| t.0.is_empty()) {
            return Err(invalid(TOKEN_VAR, "the bearer token is empty"));
        }
        Ok(PrometheusSettings { host, port, token })
    }
}

/// `host:port`, `[v6]:port`; the host without brackets.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_lists_are_parsed_and_checked() {
        assert_eq!(
            parse_list("V", "otlp, prometheus,otlp").unwrap(),
            [Exporter::Otlp, Exporter::Prometheus]
        );
        assert!(parse_list("V", "none").unwrap().is_empty());
        let e = parse_list("V", "none,otlp").unwrap_err().to_string();
        assert!(e.contains("`none` cannot be combined"), "{e}");
        let e = parse_list("V", "jaeger").unwrap_err().to_string();
        assert!(e.contains("unknown exporter `jaeger`"), "{e}");
    }

    #[test]
    fn code_choices_win_and_an_endpoint_selects_no_signal() {
        let c = Config {
            endpoint: Some("http://collector:4317".into()),
            target: Some(Target::Otlp),
            metrics_exporters: Some(Vec::new()),
            ..Config::default()
        };
        let r = c.routes().unwrap();
        assert!(matches!(r.spans, SpansTo::Otlp));
        assert!(r.metrics.is_empty());

        let c = Config {
            traces_exporter: Some(Exporter::None),
            metrics_exporters: Some(vec![Exporter::Prometheus, Exporter::Console]),
            prometheus_address: Some("127.0.0.1:0".into()),
            ..Config::default()
        };
        let r = c.routes().unwrap();
        assert!(matches!(r.spans, SpansTo::None));
        assert!(matches!(
            r.metrics.as_slice(),
            [MetricsTo::Prometheus(p), MetricsTo::Console] if p.host == "127.0.0.1" && p.port == 0
        ));

        let c = Config {
            traces_exporter: Some(Exporter::Prometheus),
            ..Config::default()
        };
        assert!(c.routes().is_err());
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            split_host_port("localhost:9464"),
            Some(("localhost".into(), 9464))
        );
        assert_eq!(split_host_port("[::1]:0"), Some(("::1".into(), 0)));
        assert_eq!(split_host_port("9464"), None);
        assert_eq!(split_host_port(":9464"), None);
        assert_eq!(split_host_port("host:99999"), None);
    }
}

//! Command-line arguments (clap derive): `flowtel ingest ...` and
//! `flowtel inspect ...`.
//!
//! The `OTEL_*` variables named in the help are resolved by the SDK, not
//! here: a flag becomes a builder setting (code wins), and an unset flag
//! leaves the SDK to apply the general and per-signal variables in their
//! documented order. Reading them here would turn, say,
//! `OTEL_EXPORTER_OTLP_ENDPOINT` into a code setting that hides
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "PenguiFlow logs and FlowEvent streams to OpenTelemetry traces and metrics";

const AFTER_HELP: &str = "\
Input: PenguiFlow structured-log lines (configure_logging(structured=True)) and
bare FlowEvent.to_payload() objects, mixed with other log lines (skipped).

With an OTLP endpoint (--endpoint or OTEL_EXPORTER_OTLP_ENDPOINT), ingest exports
spans and metrics to it; without one it shows the runs in the terminal: a
waterfall per run and a per-node table. --traces-exporter and
--metrics-exporter choose per signal: a backend that takes traces only wants
--metrics-exporter none (or prometheus, served for scraping while
--follow runs).

The other OpenTelemetry variables are honoured too: OTEL_EXPORTER_OTLP_TIMEOUT,
_COMPRESSION, _CERTIFICATE (and their per-signal variants),
OTEL_RESOURCE_ATTRIBUTES, OTEL_METRIC_EXPORT_INTERVAL. Flags win over them.

Exit status: 0 everything parsed was delivered; 1 something was not delivered
(export failure, drops; see the summary); 2 bad arguments or unreadable input.";

/// The `flowtel` command.
#[derive(Debug, Parser)]
#[command(
    name = "flowtel",
    version,
    about = ABOUT,
    after_help = AFTER_HELP,
    subcommand_required = true,
    arg_required_else_help = true,
    flatten_help = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read JSON lines and export them over OTLP, or show the runs in the terminal
    #[command(after_help = AFTER_HELP)]
    Ingest(Ingest),
    /// Walk one run's incident sequence: last success, failing node, queues,
    /// retries, cancellations and deadlines, next step
    Inspect(Inspect),
}

/// When to colour the terminal output (`auto`: only on a terminal, and not
/// when NO_COLOR is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

/// Options of both commands.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Longer lines are skipped and counted as problems
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    pub(crate) max_line_bytes: usize,
    /// Colour the output; auto: on a terminal, unless NO_COLOR is set [env: NO_COLOR]
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,
}

/// `flowtel ingest`.
#[derive(Debug, Args)]
pub(crate) struct Ingest {
    /// Files of JSON lines; `-` is standard input
    #[arg(value_name = "FILE", default_value = "-")]
    pub(crate) files: Vec<PathBuf>,
    /// OTLP endpoint: selects export instead of the terminal view
    /// [env: OTEL_EXPORTER_OTLP_ENDPOINT, or _TRACES_ENDPOINT / _METRICS_ENDPOINT]
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint: Option<String>,
    /// OTLP transport [env: OTEL_EXPORTER_OTLP_PROTOCOL] [default: grpc]
    #[arg(
        long,
        value_name = "PROTOCOL",
        value_parser = PossibleValuesParser::new(["grpc", "http/protobuf", "http"])
            .map(|p| if p == "grpc" { flowtel::Protocol::Grpc } else { flowtel::Protocol::HttpProtobuf })
    )]
    pub(crate) protocol: Option<flowtel::Protocol>,
    /// Add a header to export requests, repeatable
    /// [env: OTEL_EXPORTER_OTLP_HEADERS, added to]
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = header)]
    pub(crate) headers: Vec<(String, String)>,
    /// service.name [env: OTEL_SERVICE_NAME]
    #[arg(long, value_name = "NAME")]
    pub(crate) service_name: Option<String>,
    /// Root span name [default: flow]
    #[arg(long, value_name = "NAME")]
    pub(crate) flow_name: Option<String>,
    /// Where spans go: otlp, console (the terminal view) or none
    /// [env: OTEL_TRACES_EXPORTER] [default: otlp with an endpoint, else console]
    #[arg(long, value_name = "EXPORTER", value_parser = exporter)]
    pub(crate) traces_exporter: Option<flowtel::Exporter>,
    /// Where metrics go: otlp, prometheus, console or none; several
    /// separated by commas [env: OTEL_METRICS_EXPORTER]
    /// [default: otlp with an endpoint, else none]
    #[arg(long, value_name = "EXPORTERS", value_delimiter = ',', value_parser = exporter)]
    pub(crate) metrics_exporter: Option<Vec<flowtel::Exporter>>,
    /// Where the Prometheus endpoint listens (port 0: any free port)
    /// [env: OTEL_EXPORTER_PROMETHEUS_HOST, _PORT] [default: localhost:9464]
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) prometheus_address: Option<String>,
    /// Require the bearer token in FILE on the Prometheus endpoint (401
    /// otherwise) [env: FLOWTEL_PROMETHEUS_BEARER_TOKEN, the token itself]
    #[arg(long, value_name = "FILE")]
    pub(crate) prometheus_token_file: Option<PathBuf>,
    /// This bridge sees only part of each run (another process or bridge
    /// owns the runs' root spans): export a partial run span per run, a
    /// child of the root with its own id, instead of the root
    #[arg(long)]
    pub(crate) partial_runs: bool,
    /// Keep reading growing files (through rotation and truncation) until
    /// SIGINT/SIGTERM, then flush and exit
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// A node whose success ends a run (it sends its results to the caller,
    /// no successor), repeatable: a successful run's root span goes out at
    /// that success instead of after 30 s idle. Never name a node with
    /// successors (docs/RUN_END.md)
    #[arg(long = "run-end-node", value_name = "NAME", value_parser = node_name)]
    pub(crate) run_end_nodes: Vec<String>,
    /// Runs shown in the terminal view
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) runs: usize,
    /// How long the final flush may take
    #[arg(
        long,
        value_name = "SECS",
        default_value = "30",
        value_parser = seconds,
        allow_negative_numbers = true
    )]
    pub(crate) timeout: Duration,
    /// No progress line
    #[arg(short, long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) common: Common,
}

/// `flowtel inspect`.
#[derive(Debug, Args)]
pub(crate) struct Inspect {
    /// The run's trace_id, as in the log
    #[arg(value_name = "TRACE_ID")]
    pub(crate) trace_id: String,
    /// Files of JSON lines; `-` is standard input
    #[arg(value_name = "FILE", default_value = "-")]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) common: Common,
}

fn header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("not KEY=VALUE")?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn node_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() {
        return Err("must be a node name, not empty".into());
    }
    Ok(name.to_string())
}

fn exporter(s: &str) -> Result<flowtel::Exporter, String> {
    s.parse()
}

fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| "not a number of seconds")?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err("must be a non-negative number of seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(s: &str) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("flowtel").chain(s.split_whitespace()))
            .map(|c| c.command)
    }

    #[test]
    fn the_command_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_ingest_and_inspect() {
        let Command::Ingest(a) = parse(
            "ingest --endpoint=http://x:4317 --protocol http -f --runs 3 a.log --header k=v b.log",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.files, [PathBuf::from("a.log"), PathBuf::from("b.log")]);
        assert_eq!(a.endpoint.as_deref(), Some("http://x:4317"));
        assert!(a.follow);
        assert_eq!(a.runs, 3);
        assert_eq!(a.protocol, Some(flowtel::Protocol::HttpProtobuf));
        assert_eq!(a.headers, [("k".to_string(), "v".to_string())]);
        assert_eq!(a.traces_exporter, None);
        assert_eq!(a.metrics_exporter, None);
        assert!(a.run_end_nodes.is_empty());
        let Command::Ingest(a) =
            parse("ingest --run-end-node summarize --run-end-node=respond a.log").unwrap()
        else {
            panic!()
        };
        assert_eq!(a.run_end_nodes, ["summarize", "respond"]);
        let Command::Ingest(a) = parse(
            "ingest --traces-exporter none --metrics-exporter otlp,prometheus \
             --prometheus-address 127.0.0.1:0 --prometheus-token-file t a.log",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.traces_exporter, Some(flowtel::Exporter::None));
        assert_eq!(
            a.metrics_exporter,
            Some(vec![flowtel::Exporter::Otlp, flowtel::Exporter::Prometheus])
        );
        assert_eq!(a.prometheus_address.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(a.prometheus_token_file, Some(PathBuf::from("t")));
        let Command::Ingest(a) = parse("ingest").unwrap() else {
            panic!()
        };
        assert_eq!(a.files, [PathBuf::from("-")]);
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert_eq!(a.common.max_line_bytes, 1 << 20);
        assert_eq!(a.common.color, Color::Auto);
        let Command::Inspect(i) = parse("inspect abc x.log --color never").unwrap() else {
            panic!()
        };
        assert_eq!(i.trace_id, "abc");
        assert_eq!(i.files, [PathBuf::from("x.log")]);
        assert_eq!(i.common.color, Color::Never);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        for (a, msg) in [
            ("", "Usage:"),
            ("frobnicate", "unrecognized subcommand"),
            ("ingest --runs many", "invalid digit"),
            (
                "ingest --protocol smtp",
                "possible values: grpc, http/protobuf",
            ),
            ("ingest --header nokey", "not KEY=VALUE"),
            ("ingest --endpoint", "a value is required"),
            ("ingest --bogus", "unexpected argument '--bogus'"),
            ("inspect", "TRACE_ID"),
            ("ingest --timeout -1", "non-negative"),
            ("ingest --run-end-node", "a value is required"),
            (
                "ingest --run-end-node= a.log",
                "must be a node name, not empty",
            ),
            (
                "ingest --metrics-exporter otlp,statsd",
                "unknown exporter `statsd`",
            ),
        ] {
            let e = parse(a).unwrap_err().to_string();
            assert!(e.contains(msg), "{a}: {e}");
        }
    }
}

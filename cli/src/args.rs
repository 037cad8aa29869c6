//! Command-line arguments: `flowtel ingest ...` and `flowtel inspect ...`.

use std::time::Duration;

pub(crate) const USAGE: &str = "\
flowtel: PenguiFlow logs and FlowEvent streams to OpenTelemetry traces and metrics

USAGE:
    flowtel ingest [OPTIONS] [FILE...]      read JSON lines (no FILE or `-`: stdin)
    flowtel inspect TRACE_ID [FILE...]      walk one run's incident sequence

Input: PenguiFlow structured-log lines (configure_logging(structured=True)) and
bare FlowEvent.to_payload() objects, mixed with other log lines (skipped).

With an OTLP endpoint (--endpoint or OTEL_EXPORTER_OTLP_ENDPOINT), ingest exports
spans and metrics to it; without one it shows the runs in the terminal: a
waterfall per run and a per-node table.

OPTIONS (ingest):
    --endpoint URL        OTLP endpoint (overrides OTEL_EXPORTER_OTLP_ENDPOINT)
    --protocol P          grpc | http/protobuf (overrides OTEL_EXPORTER_OTLP_PROTOCOL)
    --header K=V          add a header to export requests (repeatable)
    --service-name NAME   service.name (overrides OTEL_SERVICE_NAME)
    --flow-name NAME      root span name (default: flow)
    -f, --follow          keep reading growing files (survives rotation and
                          truncation) until SIGINT/SIGTERM, then flush and exit
    --runs N              runs shown in the terminal view (default 10)
    --timeout SECS        how long the final flush may take (default 30)
    --max-line-bytes N    longer lines are skipped as errors (default 1048576)
    --color WHEN          auto | always | never (default auto: only on a terminal)
    -q, --quiet           no progress line
    -h, --help            this help

EXIT STATUS: 0 everything parsed was delivered; 1 something was not delivered
(export failure, drops; see the summary); 2 bad arguments or unreadable input.
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug)]
pub(crate) struct Ingest {
    pub(crate) files: Vec<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Option<flowtel::Protocol>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) service_name: Option<String>,
    pub(crate) flow_name: Option<String>,
    pub(crate) follow: bool,
    pub(crate) runs: usize,
    pub(crate) timeout: Duration,
    pub(crate) max_line_bytes: usize,
    pub(crate) color: Color,
    pub(crate) quiet: bool,
}

#[derive(Debug)]
pub(crate) struct Inspect {
    pub(crate) trace_id: String,
    pub(crate) files: Vec<String>,
    pub(crate) max_line_bytes: usize,
    pub(crate) color: Color,
}

#[derive(Debug)]
pub(crate) enum Command {
    Ingest(Ingest),
    Inspect(Inspect),
    Help,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: `{s}` is not a valid number"))
}

fn color(s: &str) -> Result<Color, String> {
    match s {
        "auto" => Ok(Color::Auto),
        "always" => Ok(Color::Always),
        "never" => Ok(Color::Never),
        _ => Err(format!("--color: `{s}` is not auto, always or never")),
    }
}

/// Parse `args` (without the program name).
pub(crate) fn parse(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter();
    let Some(sub) = it.next() else {
        return Err("missing command: ingest or inspect".into());
    };
    match sub.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "ingest" => {
            let mut a = Ingest {
                files: Vec::new(),
                endpoint: None,
                protocol: None,
                headers: Vec::new(),
                service_name: None,
                flow_name: None,
                follow: false,
                runs: 10,
                timeout: Duration::from_secs(30),
                max_line_bytes: 1 << 20,
                color: Color::Auto,
                quiet: false,
            };
            while let Some(arg) = it.next() {
                match arg.as_str() {
                    "-h" | "--help" => return Ok(Command::Help),
                    "--endpoint" => a.endpoint = Some(value(&mut it, arg)?.clone()),
                    "--protocol" => {
                        a.protocol = Some(match value(&mut it, arg)?.as_str() {
                            "grpc" => flowtel::Protocol::Grpc,
                            "http/protobuf" | "http" => flowtel::Protocol::HttpProtobuf,
                            p => {
                                return Err(format!(
                                    "--protocol: `{p}` is not grpc or http/protobuf"
                                ))
                            }
                        })
                    }
                    "--header" => {
                        let v = value(&mut it, arg)?;
                        let (k, val) = v
                            .split_once('=')
                            .ok_or_else(|| format!("--header: `{v}` is not KEY=VALUE"))?;
                        a.headers
                            .push((k.trim().to_string(), val.trim().to_string()));
                    }
                    "--service-name" => a.service_name = Some(value(&mut it, arg)?.clone()),
                    "--flow-name" => a.flow_name = Some(value(&mut it, arg)?.clone()),
                    "-f" | "--follow" => a.follow = true,
                    "--runs" => a.runs = number(value(&mut it, arg)?, arg)?,
                    "--timeout" => {
                        let secs: f64 = number(value(&mut it, arg)?, arg)?;
                        if !(secs.is_finite() && secs >= 0.0) {
                            return Err("--timeout must be a non-negative number of seconds".into());
                        }
                        a.timeout = Duration::from_secs_f64(secs);
                    }
                    "--max-line-bytes" => a.max_line_bytes = number(value(&mut it, arg)?, arg)?,
                    "--color" => a.color = color(value(&mut it, arg)?)?,
                    "-q" | "--quiet" => a.quiet = true,
                    "-" => a.files.push("-".into()),
                    f if f.starts_with('-') => return Err(format!("unknown option `{f}`")),
                    f => a.files.push(f.into()),
                }
            }
            if a.files.is_empty() {
                a.files.push("-".into());
            }
            Ok(Command::Ingest(a))
        }
        "inspect" => {
            let mut trace_id = None;
            let mut a = Inspect {
                trace_id: String::new(),
                files: Vec::new(),
                max_line_bytes: 1 << 20,
                color: Color::Auto,
            };
            while let Some(arg) = it.next() {
                match arg.as_str() {
                    "-h" | "--help" => return Ok(Command::Help),
                    "--color" => a.color = color(value(&mut it, arg)?)?,
                    "--max-line-bytes" => a.max_line_bytes = number(value(&mut it, arg)?, arg)?,
                    "-" => a.files.push("-".into()),
                    f if f.starts_with('-') => return Err(format!("unknown option `{f}`")),
                    f if trace_id.is_none() => trace_id = Some(f.to_string()),
                    f => a.files.push(f.into()),
                }
            }
            a.trace_id = trace_id.ok_or("inspect needs a TRACE_ID")?;
            if a.files.is_empty() {
                a.files.push("-".into());
            }
            Ok(Command::Inspect(a))
        }
        other => Err(format!("unknown command `{other}`: use ingest or inspect")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_ingest_and_inspect() {
        let Command::Ingest(a) = parse(&args(
            "ingest --endpoint http://x:4317 --protocol http/protobuf -f --runs 3 a.log b.log",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.files, ["a.log", "b.log"]);
        assert!(a.follow);
        assert_eq!(a.runs, 3);
        assert_eq!(a.protocol, Some(flowtel::Protocol::HttpProtobuf));
        let Command::Ingest(a) = parse(&args("ingest")).unwrap() else {
            panic!()
        };
        assert_eq!(a.files, ["-"]);
        let Command::Inspect(i) = parse(&args("inspect abc x.log")).unwrap() else {
            panic!()
        };
        assert_eq!(i.trace_id, "abc");
        assert_eq!(i.files, ["x.log"]);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        for (a, msg) in [
            ("", "missing command"),
            ("frobnicate", "unknown command"),
            ("ingest --runs many", "not a valid number"),
            ("ingest --protocol smtp", "not grpc"),
            ("ingest --header nokey", "KEY=VALUE"),
            ("ingest --endpoint", "needs a value"),
            ("ingest --bogus", "unknown option"),
            ("inspect", "needs a TRACE_ID"),
            ("ingest --timeout -1", "non-negative"),
        ] {
            let e = parse(&args(a)).unwrap_err();
            assert!(e.contains(msg), "{a}: {e}");
        }
    }
}

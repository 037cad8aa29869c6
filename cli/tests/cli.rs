//! The command line itself: `--flag=value`, `--version`, help that lists
//! every option and the environment variable behind it, usage errors in
//! clap's format with status 2, and file names that are not UTF-8.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/penguiflow/sample.log")
}

/// The binary with no OTLP configuration inherited from the environment.
fn flowtel<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowtel"));
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run flowtel")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_and_flag_equals_value() {
    let out = flowtel(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("flowtel {}\n", env!("CARGO_PKG_VERSION"))
    );

    let sample = sample();
    let out = flowtel(&[
        OsStr::new("ingest"),
        OsStr::new("--color=always"),
        OsStr::new("--runs=1"),
        OsStr::new("--max-line-bytes=100000"),
        sample.as_os_str(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("\x1b[31m"), "--color=always: {stdout}");
    assert!(
        stdout.contains("4 more of 5 runs not shown"),
        "--runs=1: {stdout}"
    );
}

#[test]
fn help_lists_every_option_with_its_environment_variable() {
    let ingest = [
        "--endpoint <URL>",
        "--protocol <PROTOCOL>",
        "--header <KEY=VALUE>",
        "--service-name <NAME>",
        "--flow-name <NAME>",
        "-f, --follow",
        "--run-end-node <NAME>",
        "--runs <N>",
        "--timeout <SECS>",
        "-q, --quiet",
        "--max-line-bytes <N>",
        "--color <WHEN>",
        "[FILE]...",
    ];
    let env = [
        "[env: OTEL_EXPORTER_OTLP_ENDPOINT",
        "[env: OTEL_EXPORTER_OTLP_PROTOCOL]",
        "[env: OTEL_EXPORTER_OTLP_HEADERS",
        "[env: OTEL_SERVICE_NAME]",
        "[env: NO_COLOR]",
    ];
    let inspect = ["<TRACE_ID>", "--max-line-bytes <N>", "--color <WHEN>"];
    for args in [&["--help"][..], &["ingest", "--help"], &["help", "ingest"]] {
        let out = flowtel(args);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        for want in ingest.iter().chain(&env) {
            assert!(help.contains(want), "{args:?} lacks {want}:\n{help}");
        }
        assert!(help.contains("Exit status: 0"), "{args:?}:\n{help}");
    }
    // The top-level help covers inspect too.
    for args in [&["--help"][..], &["inspect", "--help"]] {
        let help = text(&flowtel(args).stdout);
        for want in inspect {
            assert!(help.contains(want), "{args:?} lacks {want}:\n{help}");
        }
    }
}

#[test]
fn usage_errors_are_clap_errors_with_status_2() {
    for (args, want) in [
        (
            &["ingest", "--protocol", "smtp"][..],
            "invalid value 'smtp' for '--protocol <PROTOCOL>'",
        ),
        (
            &["ingest", "--runs", "many"],
            "invalid value 'many' for '--runs <N>'",
        ),
        (&["ingest", "--header", "nokey"], "not KEY=VALUE"),
        (&["ingest", "--timeout", "-1"], "non-negative"),
        (&["ingest", "--bogus"], "unexpected argument '--bogus'"),
        (
            &["ingest", "--endpoint"],
            "a value is required for '--endpoint <URL>'",
        ),
        (&["inspect"], "<TRACE_ID>"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
    ] {
        let out = flowtel(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(
            stderr.contains("For more information, try '--help'."),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[cfg(unix)]
#[test]
fn file_names_that_are_not_utf8_are_read_or_cleanly_refused() {
    use std::os::unix::ffi::OsStrExt;

    let dir = std::env::temp_dir().join(format!("flowtel-args-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = dir.join(OsStr::from_bytes(b"app-\xff\xfe.log"));
    std::fs::write(
        &name,
        "{\"event\":\"node_success\",\"ts\":1795305121.5,\"node_name\":\"a\",\
         \"trace_id\":\"3e512c5b0a184257a25c215d19544e6a\",\"latency_ms\":5}\n\
         {\"event\":\"node_success\",\"ts\":1795305121.6,\"node_name\":\"a\",\"latency_ms\":-1}\n",
    )
    .unwrap();

    // An existing file is read; its name is shown lossily in messages.
    let out = flowtel(&[OsStr::new("ingest"), name.as_os_str()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("1 events"), "{stderr}");
    assert!(
        stderr.contains("app-\u{fffd}\u{fffd}.log:2: field `latency_ms`"),
        "{stderr}"
    );

    // A missing one is an input error, not a panic.
    let missing = dir.join(OsStr::from_bytes(b"gone-\xff.log"));
    for cmd in ["ingest", "inspect"] {
        let mut args = vec![OsStr::new(cmd)];
        if cmd == "inspect" {
            args.push(OsStr::new("3e512c5b0a184257a25c215d19544e6a"));
        }
        args.push(missing.as_os_str());
        let out = flowtel(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(stderr.contains("cannot read "), "{cmd}: {stderr}");
        assert!(stderr.contains("gone-\u{fffd}.log"), "{cmd}: {stderr}");
        assert!(!stderr.contains("panicked"), "{cmd}: {stderr}");
    }

    // A trace id must be text: a usage error.
    let out = flowtel(&[
        OsStr::new("inspect"),
        OsStr::from_bytes(b"\xff"),
        name.as_os_str(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: invalid UTF-8"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

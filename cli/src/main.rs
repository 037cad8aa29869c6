//! The `flowtel` command: PenguiFlow structured logs and FlowEvent streams
//! to OpenTelemetry traces and metrics, with no code change in the service;
//! or, with no collector configured, the runs shown in the terminal.
//!
//! ```text
//! flowtel ingest app.log                                  # waterfall + node table
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 flowtel ingest app.log
//! flowtel ingest --follow /var/log/app.log                # tail; flush on SIGINT/SIGTERM
//! flowtel inspect 3e512c5b0a184257a25c215d19544e6a app.log
//! ```

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser as _;

/// The bridge allocates and frees per event on three threads; mimalloc's
/// thread-local free lists made the same binary 43–56% faster than glibc's
/// malloc (scripts/bench-ingest, CPU µs per event). The library leaves the
/// allocator to its users.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod incident;
mod ingest;
mod inspect;
mod lines;
mod progress;
mod report;
mod signals;
mod timeline;
mod view;

fn use_color(c: args::Color) -> bool {
    match c {
        args::Color::Always => true,
        args::Color::Never => false,
        args::Color::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    }
}

fn main() -> ExitCode {
    thp_off();
    // Usage errors: clap's message and usage on standard error, status 2;
    // --help and --version on standard output, status 0.
    let cli = args::Cli::parse();
    // SIGINT/SIGTERM: stop reading, flush, print the summary, exit.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        eprintln!("flowtel: warning: cannot handle signals: {e}");
    }
    let code = match cli.command {
        args::Command::Ingest(a) => {
            let color = use_color(a.common.color);
            ingest::run(a, &stop, color)
        }
        args::Command::Inspect(a) => {
            let color = use_color(a.common.color);
            inspect::run(a, &stop, color)
        }
    };
    ExitCode::from(code as u8)
}

/// Transparent huge pages off for this process, before any thread starts.
/// mimalloc asks for huge pages where it can; a huge page is zeroed whole
/// at its first touch, and a run that starts after other programs have
/// churned memory pays for that in system time. On 60 000 generated
/// PenguiFlow lines, each run right after the OpenTelemetry
/// Python SDK bridge (`scripts/bench-ab --pairs 9`, binaries that differ
/// only in this call): median CPU 0.155 s with huge pages, 0.114 s
/// without; peak RSS 51–63 against 30–42 MiB. Over 1 M lines back to back
/// (`--no-python --lines 1000000`): 0.95× the CPU, peak RSS 67–75 against
/// 42–48 MiB. The process-wide switch rather than mimalloc's `no_thp`
/// feature, which only stops mimalloc asking for huge pages: where the
/// kernel's setting is `always`, it would get them anyway. A failure (an
/// old kernel) changes nothing but the memory used.
fn thp_off() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

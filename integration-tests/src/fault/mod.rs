//! A fault-injecting OTLP receiver: OTLP/HTTP and OTLP/gRPC on free
//! loopback ports, answering each request as the test scripted it (status
//! codes, `Retry-After`, gRPC status with `RetryInfo`, partial success,
//! delays) and recording what arrived (time, signal, decoded items, headers).
//!
//! rotel is the real collector for the happy and the outage paths; this
//! receiver is for what rotel never does: refuse, throttle, half-accept.
//!
//! ```no_run
//! use std::time::Duration;
//! use flowtel_integration_tests::fault::{FaultReceiver, Reply, Signal};
//! let rx = FaultReceiver::start();
//! rx.script(Signal::Traces, [Reply::http(429, "slow down").with_header("retry-after", "2")]);
//! // ... point flowtel at rx.http_endpoint(), record, flush ...
//! let reqs = rx.wait_for(Signal::Traces, Duration::from_secs(10), |r| r.len() >= 2);
//! assert!(reqs[1].at - reqs[0].at >= Duration::from_secs(2));
//! ```

mod grpc;
mod http;
mod otlp;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use tonic::Code;

/// Which OTLP signal a request carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `/v1/traces` or `TraceService/Export`.
    Traces,
    /// `/v1/metrics` or `MetricsService/Export`.
    Metrics,
}

/// Which receiver a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/HTTP (protobuf).
    Http,
    /// OTLP/gRPC.
    Grpc,
}

/// What to answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Accept everything: HTTP 200 / gRPC OK with an empty response.
    Ok,
    /// Accept with a partial success: `rejected` items refused.
    Partial {
        /// `rejected_spans` / `rejected_data_points`.
        rejected: i64,
        /// `error_message`.
        message: String,
    },
    /// An HTTP status (only meaningful on the HTTP receiver); the body is a
    /// `google.rpc.Status` carrying `message`, as the OTLP spec asks.
    Http {
        /// Status code.
        status: u16,
        /// Message in the `google.rpc.Status` body.
        message: String,
    },
    /// A gRPC status (only meaningful on the gRPC receiver).
    Grpc {
        /// Status code.
        code: Code,
        /// `grpc-message`.
        message: String,
        /// A `google.rpc.RetryInfo` in `grpc-status-details-bin`.
        retry_info: Option<Duration>,
    },
}

/// One scripted reply: an answer, extra response headers, and a delay
/// before answering.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The answer.
    pub answer: Answer,
    /// Extra response headers (HTTP headers or gRPC initial metadata).
    pub headers: Vec<(String, String)>,
    /// Wait this long after the request arrived before answering.
    pub delay: Duration,
}

impl Reply {
    fn of(answer: Answer) -> Reply {
        Reply {
            answer,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Accept everything.
    pub fn ok() -> Reply {
        Self::of(Answer::Ok)
    }

    /// Accept all but `rejected` items, with `message`.
    pub fn partial(rejected: i64, message: &str) -> Reply {
        Self::of(Answer::Partial {
            rejected,
            message: message.to_string(),
        })
    }

    /// Answer with HTTP `status` and `message`.
    pub fn http(status: u16, message: &str) -> Reply {
        Self::of(Answer::Http {
            status,
            message: message.to_string(),
        })
    }

    /// Answer with gRPC `code` and `message`.
    pub fn grpc(code: Code, message: &str) -> Reply {
        Self::of(Answer::Grpc {
            code,
            message: message.to_string(),
            retry_info: None,
        })
    }

    /// Add a response header (e.g. `retry-after`).
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Attach a `google.rpc.RetryInfo` with this delay (gRPC answers).
    pub fn with_retry_info(mut self, delay: Duration) -> Reply {
        if let Answer::Grpc { retry_info, .. } = &mut self.answer {
            *retry_info = Some(delay);
        }
        self
    }

    /// Answer only after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Request {
    /// When its body had been read.
    pub at: Instant,
    /// The same, by the wall clock (to compare with an HTTP-date).
    pub wall: std::time::SystemTime,
    /// Traces or metrics.
    pub signal: Signal,
    /// HTTP or gRPC.
    pub transport: Transport,
    /// Request headers (names lowercase; gRPC metadata included).
    pub headers: Vec<(String, String)>,
    /// Whether the body was gzip-compressed.
    pub gzip: bool,
    /// Spans or metric data points in it.
    pub items: u64,
    /// The decoded body of a traces request.
    pub traces: Option<ExportTraceServiceRequest>,
    /// The decoded body of a metrics request.
    pub metrics: Option<ExportMetricsServiceRequest>,
    /// What the receiver answered.
    pub answered: Answer,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Span ids in this request, hex.
    pub fn span_ids(&self) -> Vec<String> {
        otlp::span_ids(self.traces.as_ref())
    }
}

#[derive(Default)]
struct Script {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
}

#[derive(Default)]
pub(crate) struct State {
    traces: Script,
    metrics: Script,
    requests: Vec<Request>,
}

pub(crate) type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn script_mut(&mut self, signal: Signal) -> &mut Script {
        match signal {
            Signal::Traces => &mut self.traces,
            Signal::Metrics => &mut self.metrics,
        }
    }
}

/// The next scripted reply for `signal` (the default once the script is used up).
pub(crate) fn next_reply(shared: &Shared, signal: Signal) -> Reply {
    let mut s = lock(shared);
    let script = s.script_mut(signal);
    script
        .queue
        .pop_front()
        .or_else(|| script.default.clone())
        .unwrap_or_else(Reply::ok)
}

pub(crate) fn record(shared: &Shared, request: Request) {
    lock(shared).requests.push(request);
}

/// The receiver. Stops (and closes its ports) on drop.
pub struct FaultReceiver {
    /// OTLP/HTTP port.
    pub http_port: u16,
    /// OTLP/gRPC port.
    pub grpc_port: u16,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultReceiver {
    /// Listen on two free loopback ports (HTTP and gRPC); every request is
    /// answered OK until scripted otherwise.
    pub fn start() -> FaultReceiver {
        let shared: Shared = Arc::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fault-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("receiver runtime");
                rt.block_on(async move {
                    let bind = || tokio::net::TcpListener::bind(("127.0.0.1", 0));
                    let h = bind().await.expect("HTTP port");
                    let g = bind().await.expect("gRPC port");
                    let ports = (port_of(&h), port_of(&g));
                    tokio::spawn(http::serve(h, s.clone()));
                    tokio::spawn(grpc::serve(g, s));
                    let _ = ready_tx.send(ports);
                    let _ = stop_rx.await;
                });
            })
            .expect("receiver thread");
        let (http_port, grpc_port) = ready_rx.recv().expect("receiver started");
        FaultReceiver {
            http_port,
            grpc_port,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Base URL of the HTTP receiver (flowtel appends `/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// URL of the gRPC receiver.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// A pipeline builder exporting to this receiver over `transport`, with
    /// 1 s export requests and no periodic metric export during a test.
    pub fn builder(&self, transport: Transport) -> flowtel::FlowtelBuilder {
        let (endpoint, protocol) = match transport {
            Transport::Http => (self.http_endpoint(), flowtel::Protocol::HttpProtobuf),
            Transport::Grpc => (self.grpc_endpoint(), flowtel::Protocol::Grpc),
        };
        flowtel::Flowtel::builder()
            .with_endpoint(endpoint)
            .with_protocol(protocol)
            .with_export_timeout(Duration::from_secs(1))
            .with_metric_interval(Duration::from_secs(3600))
    }

    /// Answer the next requests of `signal` with these replies, in order
    /// (after any still queued).
    pub fn script(&self, signal: Signal, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared).script_mut(signal).queue.extend(replies);
    }

    /// Answer requests of `signal` with `reply` once the script is used up.
    pub fn set_default(&self, signal: Signal, reply: Reply) {
        lock(&self.shared).script_mut(signal).default = Some(reply);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared).requests.clone()
    }

    /// The requests of one signal so far.
    pub fn requests_for(&self, signal: Signal) -> Vec<Request> {
        let s = lock(&self.shared);
        s.requests
            .iter()
            .filter(|r| r.signal == signal)
            .cloned()
            .collect()
    }

    /// Poll until `done` holds for the requests of `signal` or `timeout`
    /// passes; returns them either way (the caller's assertions say what is
    /// missing).
    pub fn wait_for(
        &self,
        signal: Signal,
        timeout: Duration,
        done: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        let t = Instant::now();
        loop {
            let r = self.requests_for(signal);
            if done(&r) || t.elapsed() >= timeout {
                return r;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn port_of(l: &tokio::net::TcpListener) -> u16 {
    l.local_addr().map(|a| a.port()).unwrap_or(0)
}

impl Drop for FaultReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Total items of the requests.
pub fn items(requests: &[Request]) -> u64 {
    requests.iter().map(|r| r.items).sum()
}

//! A collector that throttles or is briefly unavailable: HTTP 429 with
//! `Retry-After` (seconds or HTTP-date), 503, gRPC UNAVAILABLE or
//! RESOURCE_EXHAUSTED with a RetryInfo. The batch is retried, no sooner
//! than the collector asked, and by all export loops together: while the
//! collector has asked for a pause, no request at all is sent.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use flowtel::Flowtel;
use flowtel_integration_tests::fault::{Code, FaultReceiver, Reply, Request, Signal, Transport};
use flowtel_integration_tests::load::runs;

fn pipeline(rx: &FaultReceiver, transport: Transport) -> Flowtel {
    rx.builder(transport)
        .with_max_export_batch(10)
        .build()
        .unwrap()
}

/// The pause a collector asked for: a delay, or until a time.
#[derive(Clone, Copy, Debug)]
enum Pause {
    For(Duration),
    Until(SystemTime),
}

fn ids(reqs: &[Request]) -> HashSet<String> {
    reqs.iter().flat_map(|r| r.span_ids()).collect()
}

/// Batch A (ten spans, one request) meets `reply`; then, while the
/// collector's pause lasts, three more batches are recorded and flushed:
/// four export loops are free to send them. Neither A's retry nor any of
/// them may arrive before the pause is over. Returns the observed gap.
fn paused(transport: Transport, reply: Reply, pause: Pause) -> Duration {
    let rx = FaultReceiver::start();
    rx.script(Signal::Traces, [reply]);
    let f = pipeline(&rx, transport);
    runs(0, 1, 10)
        .into_iter()
        .for_each(|e| f.record(e).unwrap());
    // Not delivered within half a second: the collector asked for a pause.
    assert!(f.flush(Duration::from_millis(500)).is_err());
    runs(1, 3, 10)
        .into_iter()
        .for_each(|e| f.record(e).unwrap());
    let _ = f.flush(Duration::from_secs(10));
    let reqs = rx.wait_for(Signal::Traces, Duration::from_secs(10), |r| {
        ids(r).len() >= 40
    });
    assert_eq!(ids(&reqs).len(), 40, "everything arrived: {reqs:#?}");

    let refused = &reqs[0];
    assert_eq!(refused.items, 10, "{reqs:#?}");
    let timeline: Vec<_> = reqs.iter().map(|r| (r.at - refused.at, r.items)).collect();
    for r in &reqs[1..] {
        let after = r.at - refused.at;
        let kept = match pause {
            Pause::For(d) => after >= d,
            Pause::Until(t) => r.wall >= t,
        };
        assert!(
            kept,
            "a request {after:?} after the refusal, inside the pause ({pause:?}): {timeline:?}"
        );
    }
    let retry = reqs[1..]
        .iter()
        .find(|r| r.span_ids() == refused.span_ids())
        .expect("the refused batch was retried");
    let gap = retry.at - refused.at;
    let first = reqs[1].at - refused.at;
    eprintln!(
        "figure: {transport:?} {:?}: first request after {first:?}, the retry after {gap:?}; \
         {} requests in all",
        refused.answered,
        reqs.len()
    );
    f.shutdown(Duration::from_secs(5)).unwrap();
    let s = f.stats();
    assert_eq!(s.spans_exported, s.spans_created, "{s:?}");
    assert_eq!(s.export_failures, 1, "{s:?}");
    assert_eq!(s.spans_rejected + s.spans_dropped, 0, "{s:?}");
    gap
}

#[test]
fn http_429_retry_after_seconds_pauses_every_loop() {
    let reply = Reply::http(429, "slow down").with_header("retry-after", "2");
    paused(Transport::Http, reply, Pause::For(Duration::from_secs(2)));
}

#[test]
fn http_503_retry_after_http_date_pauses_every_loop() {
    // An HTTP-date has whole seconds: the pause ends at the date itself.
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
    let until = httpdate::parse_http_date(&date).unwrap();
    let reply = Reply::http(503, "restarting").with_header("retry-after", &date);
    paused(Transport::Http, reply, Pause::Until(until));
}

#[test]
fn grpc_unavailable_retry_info_pauses_every_loop() {
    let reply =
        Reply::grpc(Code::Unavailable, "overloaded").with_retry_info(Duration::from_millis(1500));
    paused(
        Transport::Grpc,
        reply,
        Pause::For(Duration::from_millis(1500)),
    );
}

#[test]
fn grpc_resource_exhausted_with_retry_info_is_retried_after_it() {
    let reply =
        Reply::grpc(Code::ResourceExhausted, "rate limit").with_retry_info(Duration::from_secs(1));
    paused(Transport::Grpc, reply, Pause::For(Duration::from_secs(1)));
}

/// Without a delay from the collector: retried with flowtel's backoff, then
/// delivered, and counted once.
fn retried_then_delivered(transport: Transport, replies: Vec<Reply>) {
    let rx = FaultReceiver::start();
    let failures = replies.len() as u64;
    rx.script(Signal::Traces, replies);
    let f = pipeline(&rx, transport);
    runs(0, 1, 5).into_iter().for_each(|e| f.record(e).unwrap());
    let _ = f.flush(Duration::from_secs(10));
    let reqs = rx.wait_for(Signal::Traces, Duration::from_secs(10), |r| {
        r.len() as u64 > failures
    });
    assert_eq!(reqs.len() as u64, failures + 1, "{reqs:#?}");
    assert!(reqs.iter().all(|r| r.span_ids() == reqs[0].span_ids()));
    let gaps: Vec<Duration> = reqs.windows(2).map(|w| w[1].at - w[0].at).collect();
    eprintln!(
        "figure: {transport:?} {:?}: retries after {gaps:?}",
        reqs[0].answered
    );
    f.flush(Duration::from_secs(5)).unwrap();
    f.shutdown(Duration::from_secs(5)).unwrap();
    let s = f.stats();
    assert_eq!(s.spans_exported, s.spans_created, "{s:?}");
    assert_eq!(s.export_failures, failures, "{s:?}");
}

#[test]
fn http_503_502_504_are_retried_then_delivered() {
    retried_then_delivered(
        Transport::Http,
        vec![
            Reply::http(503, "restarting"),
            Reply::http(502, "bad gateway"),
            Reply::http(504, "gateway timeout"),
        ],
    );
}

#[test]
fn grpc_unavailable_without_retry_info_is_retried_then_delivered() {
    retried_then_delivered(
        Transport::Grpc,
        vec![
            Reply::grpc(Code::Unavailable, "restarting"),
            Reply::grpc(Code::Aborted, "conflict"),
        ],
    );
}

#[test]
fn a_collector_slower_than_the_timeout_is_retried() {
    // The first answer comes after the 1 s export timeout: flowtel gives up
    // on it and sends the same batch again.
    retried_then_delivered(
        Transport::Http,
        vec![Reply::ok().delayed(Duration::from_millis(1500))],
    );
}

#[test]
fn a_pause_beyond_the_shutdown_deadline_is_not_waited_for() {
    let rx = FaultReceiver::start();
    let pause = Reply::http(429, "come back in a minute").with_header("retry-after", "60");
    rx.script(Signal::Traces, [pause]);
    let f = pipeline(&rx, Transport::Http);
    runs(0, 1, 5).into_iter().for_each(|e| f.record(e).unwrap());
    assert!(f.flush(Duration::from_millis(500)).is_err());
    let t = std::time::Instant::now();
    assert!(f.shutdown(Duration::from_secs(2)).is_err());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let s = f.stats();
    // The held batch and the run's root, counted as lost; nothing resent.
    assert_eq!(s.spans_dropped, s.spans_created, "{s:?}");
    assert_eq!(s.spans_exported, 0, "{s:?}");
    assert_eq!(rx.requests_for(Signal::Traces).len(), 1);
}

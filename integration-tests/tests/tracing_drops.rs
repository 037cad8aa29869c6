//! Drop accounting with `tracing` spans in the mix, against the real
//! collector (rotel): while it is down the span buffer fills with attempt
//! spans and `tracing` spans alike; what does not fit is dropped and
//! counted, and exactly what was counted as exported arrives once it is up.

use std::time::{Duration, Instant};

use flowtel::{Flowtel, Protocol};
use flowtel_integration_tests::collector::{free_port, Collector};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

const BUFFER: usize = 16;
const ATTEMPTS: u32 = 30;

#[test]
fn a_full_buffer_drops_and_counts_tracing_and_mapped_spans_alike() {
    let (gp, hp) = (free_port(), free_port());
    let flowtel = Flowtel::builder()
        .with_endpoint(format!("http://127.0.0.1:{gp}"))
        .with_protocol(Protocol::Grpc)
        .with_export_timeout(Duration::from_millis(300))
        .with_max_buffered_spans(BUFFER)
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(flowtel.tracing_layer()));
    let run = flowtel.new_run();
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..ATTEMPTS {
            let attempt = run.start_attempt("step", n);
            {
                let _in = attempt.enter();
                tracing::info_span!("inside").in_scope(|| {});
            }
            attempt.success();
        }
    });
    run.end().unwrap();
    // Every span made (attempts, tracing spans, the root): polled, no sleep.
    let made = u64::from(ATTEMPTS) * 2 + 1;
    let deadline = Instant::now() + Duration::from_secs(10);
    while flowtel.stats().spans_created < made {
        assert!(Instant::now() < deadline, "{:?}", flowtel.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = flowtel.stats();
    assert!(
        s.spans_dropped >= made - BUFFER as u64,
        "nothing listens, {BUFFER} fit: {s:?}"
    );

    let collector = Collector::start_on(gp, hp);
    flowtel.shutdown(Duration::from_secs(30)).unwrap();
    let s = flowtel.stats();
    assert_eq!(s.spans_created, made, "{s:?}");
    assert_eq!(s.spans_exported + s.spans_dropped, made, "{s:?}");
    assert!(s.spans_exported > 0, "{s:?}");

    let r = collector.wait_for(Duration::from_secs(15), |r| {
        r.spans.len() as u64 >= s.spans_exported
    });
    assert_eq!(r.spans.len() as u64, s.spans_exported, "{s:?}");
    assert!(
        r.spans.iter().all(|sp| sp.trace_id == run.trace_id()),
        "only this run"
    );
    let tracing_spans = r.spans.iter().filter(|sp| sp.name == "inside").count();
    assert!(tracing_spans > 0, "tracing spans kept in the buffer too");
    // A dropped attempt leaves its tracing child without a parent, never
    // a span under the wrong one.
    for sp in r.spans.iter().filter(|sp| sp.name == "inside") {
        assert_ne!(sp.parent_id, "");
    }
}

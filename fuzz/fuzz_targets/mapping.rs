//! The mapping: any bytes, as JSON lines, parsed and recorded into one
//! long-lived pipeline (spans and metrics into memory). A panic on the
//! mapping thread aborts the process (cargo fuzz builds with panic=abort),
//! so libFuzzer sees it.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, InMemory};
use libfuzzer_sys::fuzz_target;

fn pipeline() -> &'static (Flowtel, InMemory) {
    static P: OnceLock<(Flowtel, InMemory)> = OnceLock::new();
    P.get_or_init(|| {
        let sink = InMemory::new();
        let f = Flowtel::builder()
            .with_in_memory(&sink)
            .with_run_idle_timeout(Duration::from_millis(1))
            .with_max_open_runs(64)
            .with_cardinality_limit(32)
            .build()
            .expect("pipeline");
        (f, sink)
    })
}

fuzz_target!(|data: &[u8]| {
    let (flowtel, sink) = pipeline();
    let Ok(text) = std::str::from_utf8(data) else { return };
    for line in text.lines() {
        if let Ok(ev) = FlowEvent::from_json(line) {
            let _ = flowtel.record_wait(ev, Duration::from_secs(5));
        }
    }
    // Now and then, wait for the mapping to catch up and drop what it made.
    if data.len() % 16 == 0 {
        let _ = flowtel.flush(Duration::from_secs(5));
        sink.clear();
    }
});

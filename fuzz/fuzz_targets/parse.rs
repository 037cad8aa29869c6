//! The event parser: any bytes, as one line. It must return an event or an
//! error naming a field, never panic, never hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        match flowtel::FlowEvent::from_json(line) {
            // A parsed event always passes validation.
            Ok(ev) => assert!(ev.validate().is_ok()),
            Err(e) => assert!(!e.field().is_empty() && !e.problem().is_empty()),
        }
    }
});

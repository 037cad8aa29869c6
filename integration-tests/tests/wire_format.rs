//! What flowtel puts on the wire, decoded with opentelemetry-proto's own
//! types, field by field against the spans flowtel made (the same events
//! through an in-memory pipeline): ids, parent, name, kind, start and end
//! in nanoseconds, attributes with their types, events, status, scope and
//! resource. Over HTTP (with and without gzip is covered in `compression`)
//! and gRPC.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use flowtel::{Flowtel, InMemory, Protocol, SpanData};
use flowtel_integration_tests::fault::{FaultReceiver, Signal};
use flowtel_integration_tests::scenario::realistic;
use flowtel_integration_tests::unix_now;
use opentelemetry::trace::Status;
use opentelemetry::{KeyValue, Value};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue as ProtoKeyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};

fn ns(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn same_value(v: &Value, a: Option<&Any>) -> bool {
    match (v, a) {
        (Value::Bool(x), Some(Any::BoolValue(y))) => x == y,
        (Value::I64(x), Some(Any::IntValue(y))) => x == y,
        (Value::F64(x), Some(Any::DoubleValue(y))) => x.to_bits() == y.to_bits(),
        (Value::String(x), Some(Any::StringValue(y))) => x.as_str() == y,
        _ => false,
    }
}

fn check_attributes(what: &str, made: &[KeyValue], sent: &[ProtoKeyValue]) {
    assert_eq!(made.len(), sent.len(), "{what}: {made:?} vs {sent:?}");
    for (m, s) in made.iter().zip(sent) {
        assert_eq!(m.key.as_str(), s.key, "{what}: attribute order and keys");
        let value = s.value.as_ref().and_then(|v| v.value.as_ref());
        assert!(
            same_value(&m.value, value),
            "{what}: attribute {} made {:?}, sent {value:?}",
            m.key,
            m.value
        );
    }
}

fn check_span(made: &SpanData, sent: &Span) {
    let what = format!("span {} ({})", made.span_context.span_id(), made.name);
    assert_eq!(
        sent.trace_id,
        made.span_context.trace_id().to_bytes(),
        "{what}"
    );
    assert_eq!(
        sent.span_id,
        made.span_context.span_id().to_bytes(),
        "{what}"
    );
    let parent = made.parent_span_id.to_bytes();
    if parent == [0; 8] {
        assert!(
            sent.parent_span_id.is_empty(),
            "{what}: a root has no parent"
        );
    } else {
        assert_eq!(sent.parent_span_id, parent, "{what}");
    }
    assert_eq!(sent.name, made.name, "{what}");
    assert_eq!(sent.kind, SpanKind::Internal as i32, "{what}");
    assert_eq!(
        sent.start_time_unix_nano,
        ns(made.start_time),
        "{what}: start"
    );
    assert_eq!(sent.end_time_unix_nano, ns(made.end_time), "{what}: end");
    check_attributes(&what, &made.attributes, &sent.attributes);
    assert_eq!(
        sent.events.len(),
        made.events.events.len(),
        "{what}: events"
    );
    for (m, s) in made.events.events.iter().zip(&sent.events) {
        assert_eq!(s.name, m.name, "{what}: event name");
        assert_eq!(s.time_unix_nano, ns(m.timestamp), "{what}: event time");
        check_attributes(
            &format!("{what} event {}", m.name),
            &m.attributes,
            &s.attributes,
        );
    }
    let status = sent.status.clone().unwrap_or_default();
    match &made.status {
        Status::Error { description } => {
            assert_eq!(status.code, StatusCode::Error as i32, "{what}");
            assert_eq!(status.message, description.as_ref(), "{what}");
        }
        Status::Ok => assert_eq!(status.code, StatusCode::Ok as i32, "{what}"),
        Status::Unset => assert_eq!(status.code, StatusCode::Unset as i32, "{what}"),
    }
}

fn compare(protocol: Protocol) {
    let scenario = realistic(unix_now() - 30.0);
    let sink = InMemory::new();
    let made_by = |b: flowtel::FlowtelBuilder| {
        let f = b
            .with_service_name("wire-check")
            .with_flow_name("support-triage")
            .build()
            .unwrap();
        for e in &scenario.events {
            f.record(e.clone()).unwrap();
        }
        f.shutdown(Duration::from_secs(10)).unwrap();
        f.stats()
    };
    made_by(Flowtel::builder().with_in_memory(&sink));
    let made = sink.spans();

    let rx = FaultReceiver::start();
    let endpoint = match protocol {
        Protocol::Grpc => rx.grpc_endpoint(),
        _ => rx.http_endpoint(),
    };
    let stats = made_by(
        Flowtel::builder()
            .with_endpoint(endpoint)
            .with_protocol(protocol),
    );
    assert_eq!(stats.spans_exported as usize, made.len(), "{stats:?}");

    let mut sent: HashMap<Vec<u8>, Span> = HashMap::new();
    for r in rx.requests_for(Signal::Traces) {
        for rs in r.traces.expect("decoded").resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value);
            assert_eq!(service, Some(Any::StringValue("wire-check".into())));
            for ss in rs.scope_spans {
                let scope = ss.scope.expect("an instrumentation scope");
                assert_eq!(scope.name, "flowtel");
                assert_eq!(
                    scope.version,
                    made[0].instrumentation_scope.version().unwrap()
                );
                for s in ss.spans {
                    assert!(sent.insert(s.span_id.clone(), s).is_none(), "sent once");
                }
            }
        }
    }
    assert_eq!(sent.len(), made.len());
    for m in &made {
        let s = sent
            .get(m.span_context.span_id().to_bytes().as_slice())
            .unwrap_or_else(|| panic!("span {} ({}) not sent", m.span_context.span_id(), m.name));
        check_span(m, s);
    }
    assert!(
        made.iter().any(|m| !m.events.events.is_empty())
            && made
                .iter()
                .any(|m| matches!(m.status, Status::Error { .. })),
        "the scenario exercises events and error statuses"
    );
}

#[test]
fn http_spans_match_field_by_field() {
    compare(Protocol::HttpProtobuf);
}

#[test]
fn grpc_spans_match_field_by_field() {
    compare(Protocol::Grpc);
}

use std::borrow::Cow;
use std::time::Duration;

use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

use super::*;

/// What opentelemetry-proto's conversion and prost make of the batch.
fn reference(batch: Vec<SpanData>, resource: &Resource) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(batch, &resource.into()),
    }
    .encode_to_vec()
}

/// The spans as the pipeline carries them (whole).
fn whole(batch: &[SpanData]) -> Vec<SpanRecord> {
    batch.iter().cloned().map(SpanRecord::from).collect()
}

fn cx(trace: u128, span: u64, flags: u8, remote: bool, state: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::new(flags),
        remote,
        state,
    )
}

fn span(i: u64, scope: InstrumentationScope) -> SpanData {
    let t0 = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789 + i);
    let mut events = SpanEvents::default();
    let mut links = SpanLinks::default();
    if i % 2 == 0 {
        events.events.push(Event::new(
            "exception",
            t0 + Duration::from_micros(5),
            vec![
                KeyValue::new("exception.type", "TimeoutError"),
                KeyValue::new("exception.message", ""),
            ],
            2,
        ));
        events.dropped_count = 1;
        links.links.push(Link::new(
            cx(
                7,
                9,
                0,
                true,
                TraceState::from_key_value([("k", "v")]).unwrap(),
            ),
            vec![KeyValue::new("flow.link", true)],
            0,
        ));
        links.dropped_count = 3;
    }
    SpanData {
        span_context: cx(
            0x3e51_2c5b_0a18_4257_a25c_215d_1954_4e6a + i as u128,
            i + 1,
            (i % 2) as u8,
            false,
            if i % 3 == 0 {
                TraceState::from_key_value([("vendor", "x1"), ("other", "y")]).unwrap()
            } else {
                TraceState::NONE
            },
        ),
        parent_span_id: if i % 4 == 0 {
            SpanId::INVALID
        } else {
            SpanId::from(99)
        },
        parent_span_is_remote: i % 5 == 0,
        span_kind: [
            SpanKind::Internal,
            SpanKind::Server,
            SpanKind::Client,
            SpanKind::Producer,
            SpanKind::Consumer,
        ][i as usize % 5]
            .clone(),
        name: Cow::Owned(format!("node {i}")),
        start_time: t0,
        end_time: if i == 3 {
            UNIX_EPOCH
        } else {
            t0 + Duration::from_millis(i)
        },
        attributes: vec![
            KeyValue::new("flow.node.name", "triage"),
            KeyValue::new("flow.node.attempt", i as i64),
            KeyValue::new("flow.node.attempt.neg", -(i as i64)),
            KeyValue::new("flow.latency", 12.5 * i as f64),
            KeyValue::new("flow.cancelled", i % 2 == 0),
            KeyValue::new("empty", ""),
            KeyValue::new(
                "list.s",
                Value::Array(vec![StringValue::from("a"), "".into()].into()),
            ),
            KeyValue::new("list.i", Value::Array(vec![1i64, -2, 0].into())),
            KeyValue::new("list.f", Value::Array(vec![0.0f64, 1.5].into())),
            KeyValue::new("list.b", Value::Array(vec![true, false].into())),
            KeyValue::new("list.empty", Value::Array(Vec::<i64>::new().into())),
        ],
        dropped_attributes_count: (i % 3) as u32,
        events,
        links,
        status: match i % 3 {
            0 => Status::Unset,
            1 => Status::Ok,
            _ => Status::error(if i == 5 {
                ""
            } else {
                "node failed: ValueError"
            }),
        },
        instrumentation_scope: scope,
    }
}

#[test]
fn the_bytes_are_opentelemetry_protos_with_every_field_set() {
    let flowtel = InstrumentationScope::builder("flowtel")
        .with_version("0.1.0")
        .build();
    let other = InstrumentationScope::builder("app")
        .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
        .with_attributes([KeyValue::new("lib", "x")])
        .build();
    let batch: Vec<SpanData> = (0..24)
        .map(|i| {
            span(
                i,
                if i % 7 == 3 {
                    other.clone()
                } else {
                    flowtel.clone()
                },
            )
        })
        .collect();
    let resource = Resource::builder()
        .with_service_name("svc")
        .with_schema_url([KeyValue::new("deployment", "prod")], "https://x/1.0")
        .build();
    let ours = encode(&whole(&batch), &SpanResource::new(&resource));
    assert_eq!(ours, reference(batch, &resource));
}

#[test]
fn an_empty_batch_and_a_bare_span_match_too() {
    let resource = Resource::builder_empty().build();
    let r = SpanResource::new(&resource);
    assert_eq!(encode(&[], &r), reference(vec![], &resource));
    let bare = SpanData {
        span_context: SpanContext::empty_context(),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed(""),
        start_time: UNIX_EPOCH,
        end_time: UNIX_EPOCH,
        attributes: vec![],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("").build(),
    };
    assert_eq!(
        encode(&whole(std::slice::from_ref(&bare)), &r),
        reference(vec![bare], &resource)
    );
}

/// Generated spans: any value kind and length (lengths around the varint
/// boundaries of 127 and 16 383 bytes included), any number of attributes,
/// events and links, times around the epoch and far from it.
#[test]
fn generated_spans_give_opentelemetry_protos_bytes() {
    use proptest::prelude::*;

    let text = prop_oneof![
        "[a-zé_ ]{0,8}",
        (120usize..140).prop_map(|n| "x".repeat(n)),
        (16_370usize..16_400).prop_map(|n| "y".repeat(n)),
    ];
    let value = prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.clone().prop_map(Value::from),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(v.into())),
        prop::collection::vec(text.clone(), 0..3).prop_map(|v| {
            Value::Array(
                v.into_iter()
                    .map(StringValue::from)
                    .collect::<Vec<_>>()
                    .into(),
            )
        }),
    ];
    let attrs = prop::collection::vec(
        (text.clone(), value).prop_map(|(k, v)| KeyValue::new(k, v)),
        0..12,
    );
    let time = prop_oneof![Just(0u64), 1u64..10, 1_700_000_000_000_000_000u64..u64::MAX];
    let span = (
        (any::<u128>(), any::<u64>(), any::<u64>(), any::<u8>()),
        text,
        (time.clone(), time.clone()),
        attrs.clone(),
        prop::collection::vec((time, attrs.clone()), 0..3),
        prop::collection::vec(((any::<u128>(), any::<u64>()), attrs), 0..2),
        (0u8..3, 0u32..3),
    )
        .prop_map(
            |((t, s, p, f), name, (st, en), attributes, evs, lks, (code, dropped))| {
                let at = |ns: u64| UNIX_EPOCH + Duration::from_nanos(ns);
                let mut events = SpanEvents::default();
                for (ts, a) in evs {
                    events.events.push(Event::new("e", at(ts), a, dropped));
                }
                let mut links = SpanLinks::default();
                for ((lt, ls), a) in lks {
                    links.links.push(Link::new(
                        cx(lt, ls, f, f % 2 == 0, TraceState::NONE),
                        a,
                        dropped,
                    ));
                }
                SpanData {
                    span_context: cx(t, s, f, false, TraceState::NONE),
                    parent_span_id: SpanId::from(p),
                    parent_span_is_remote: f % 3 == 0,
                    span_kind: SpanKind::Internal,
                    name: Cow::Owned(name.clone()),
                    start_time: at(st),
                    end_time: at(en),
                    attributes,
                    dropped_attributes_count: dropped,
                    events,
                    links,
                    status: match code {
                        0 => Status::Unset,
                        1 => Status::Ok,
                        _ => Status::error(name),
                    },
                    instrumentation_scope: InstrumentationScope::builder("flowtel").build(),
                }
            },
        );
    let resource = Resource::builder().with_service_name("svc").build();
    let r = SpanResource::new(&resource);
    let mut runner = crate::test_support::fixed_seed_runner(200);
    runner
        .run(&prop::collection::vec(span, 0..6), |batch| {
            prop_assert_eq!(encode(&whole(&batch), &r), reference(batch, &resource));
            Ok(())
        })
        .unwrap();
}

/// Attempt spans written from their compact record give the bytes of their
/// `SpanData` (as opentelemetry-proto writes it), alone and mixed with
/// whole spans of flowtel's scope and of another one: every optional part
/// present or not, empty and long strings, extreme numbers and times.
#[test]
fn attempt_records_give_the_bytes_of_their_span_data() {
    use std::sync::Arc;

    use crate::record::{AttemptError, AttemptSpan};
    use proptest::prelude::*;

    let text = prop_oneof!["[a-zé_ ]{0,8}", (120usize..140).prop_map(|n| "x".repeat(n))];
    let shared = text.clone().prop_map(|s| Arc::<str>::from(s.as_str()));
    let extra = prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.clone().prop_map(Value::from),
    ];
    let error = (text.clone(), text.clone(), text.clone()).prop_map(|(t, e, m)| {
        Box::new(AttemptError {
            error_type: t,
            exception_type: e,
            message: m,
        })
    });
    let time = prop_oneof![Just(0u64), 1u64..10, 1_700_000_000_000_000_000u64..u64::MAX];
    let outcome = prop_oneof![Just("success"), Just("error"), Just("timeout"), Just("")];
    let attempt = (
        (
            any::<u128>(),
            any::<u64>(),
            prop_oneof![Just(0u64), any::<u64>()],
        ),
        (
            shared.clone(),
            prop::option::of(shared.clone()),
            any::<u32>(),
            outcome,
        ),
        (any::<u64>(), any::<u64>()),
        (prop::option::of(shared.clone()), prop::option::of(shared)),
        prop::collection::vec(
            ("flow\\.extra\\.[a-z]{1,6}", extra).prop_map(|(k, v)| KeyValue::new(k, v)),
            0..3,
        ),
        prop::option::of(error),
        (time.clone(), time),
    )
        .prop_map(
            |(
                (t, id, parent),
                (name, node_id, n, outcome),
                (din, dout),
                (run, tenant),
                extras,
                error,
                (st, en),
            )| {
                AttemptSpan {
                    trace: TraceId::from(t),
                    id: SpanId::from(id),
                    parent: SpanId::from(parent),
                    name,
                    node_id,
                    attempt: n,
                    outcome,
                    depth_in: din,
                    depth_out: dout,
                    run_id: run,
                    tenant,
                    extras,
                    error,
                    start_ns: u128::from(st),
                    end_ns: u128::from(en),
                }
            },
        );
    let other = InstrumentationScope::builder("lib")
        .with_version("1")
        .build();
    let resource = Resource::builder().with_service_name("svc").build();
    let r = SpanResource::new(&resource);
    let mut runner = crate::test_support::fixed_seed_runner(300);
    runner
        .run(
            &(prop::collection::vec(attempt, 0..5), 0u64..3),
            |(attempts, wholes)| {
                let mut records: Vec<SpanRecord> = Vec::new();
                let mut datas: Vec<SpanData> = Vec::new();
                for (i, a) in attempts.into_iter().enumerate() {
                    if (i as u64) < wholes {
                        let s = span(
                            i as u64,
                            if i % 2 == 0 {
                                other.clone()
                            } else {
                                crate::record::scope().clone()
                            },
                        );
                        records.push(s.clone().into());
                        datas.push(s);
                    }
                    datas.push(a.to_span_data());
                    records.push(SpanRecord::Attempt(a));
                }
                prop_assert_eq!(encode(&records, &r), reference(datas, &resource));
                Ok(())
            },
        )
        .unwrap();
}

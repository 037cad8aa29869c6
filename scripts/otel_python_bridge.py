"""The bridge a PenguiFlow user would write with the OpenTelemetry Python SDK:
read the structured log, one span per node attempt (start = ts - latency),
a counter of events and a duration histogram, exported over OTLP/gRPC.
The comparison point for `flowtel ingest` in scripts/bench-ingest.

    python scripts/otel_python_bridge.py EVENTS.log http://127.0.0.1:4317

Prints one line: events, seconds, events/s, CPU seconds of this process.
"""

import json
import resource
import sys
import time

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

TERMINAL = {"node_success", "node_error", "node_timeout"}


def main(path: str, endpoint: str) -> None:
    res = Resource.create({"service.name": "otel-python-bridge"})
    tp = TracerProvider(resource=res)
    # Large queue so that the comparison is not about drops.
    tp.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            max_queue_size=1_000_000,
            max_export_batch_size=2048,
        )
    )
    mp = MeterProvider(
        resource=res,
        metric_readers=[
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=60_000
            )
        ],
    )
    tracer = tp.get_tracer("bridge")
    meter = mp.get_meter("bridge")
    events = meter.create_counter("flow.events", unit="{event}")
    duration = meter.create_histogram("flow.node.duration", unit="s")

    start = time.monotonic()
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            ev = obj.get("extra", obj)
            kind = ev.get("event")
            if kind is None or "ts" not in ev:
                continue
            n += 1
            node = ev.get("node_name") or "_unknown"
            events.add(1, {"flow.event.type": kind, "flow.node.name": node})
            if kind not in TERMINAL or not ev.get("trace_id"):
                continue
            latency = ev.get("latency_ms") or 0.0
            end_ns = int(ev["ts"] * 1e9)
            start_ns = end_ns - int(latency * 1e6)
            parent = trace.set_span_in_context(
                NonRecordingSpan(
                    SpanContext(
                        trace_id=int(ev["trace_id"], 16),
                        span_id=1,
                        is_remote=True,
                        trace_flags=TraceFlags(TraceFlags.SAMPLED),
                    )
                )
            )
            span = tracer.start_span(
                node,
                context=parent,
                start_time=start_ns,
                attributes={"flow.node.attempt": ev.get("attempt", 0)},
            )
            if kind != "node_success":
                span.set_status(Status(StatusCode.ERROR, kind))
            span.end(end_time=end_ns)
            outcome = {"node_success": "success", "node_error": "error"}.get(kind, "timeout")
            duration.record(latency / 1000.0, {"flow.node.name": node, "flow.node.outcome": outcome})
    tp.shutdown()
    mp.shutdown()
    secs = time.monotonic() - start
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime
    print(f"otel-python: {n} events in {secs:.2f} s = {n / secs:.0f} events/s, CPU {cpu:.2f} s = {cpu / n * 1e6:.1f} µs/event")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

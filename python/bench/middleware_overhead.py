"""What a telemetry middleware costs a real PenguiFlow flow.

A three-node PenguiFlow flow (parse -> enrich -> respond, trivial async
work) moves ``--messages`` messages (each one a run: 6 FlowEvents) per
batch, with one of five middleware lists:

  none        no middleware
  noop        a no-op ``async def`` middleware: what PenguiFlow itself
              charges for one more middleware (the floor any middleware pays)
  prometheus  seed 000's ``prometheus_client`` middleware (counter, histogram, gauge)
  otel        a hand-written OpenTelemetry Python SDK middleware: a span per
              attempt in the run's trace (BatchSpanProcessor, OTLP/gRPC) plus
              a counter and a histogram (PeriodicExportingMetricReader, OTLP/gRPC)
  flowtel     ``flowtel.middleware()`` (OTLP/gRPC), ``run_end_nodes=["respond"]``
              so that each run's root goes out at its last event

Modes are interleaved in one process (each round runs every mode once, in a
shuffled order) and the table reports the median batch time per mode, its
overhead over ``none``, and over ``noop`` (the part a middleware's own work
adds above PenguiFlow's charge for calling one). The exporters send to a real rotel-agent on
loopback (blackhole exporter), started here. At the end every span a mode
made is accounted for: created, exported, lost.

A second table times one middleware call on a real PenguiFlow ``FlowEvent``
outside any flow, and, for flowtel, the JSON route a user might take
(``record(json.dumps(event.to_payload()))``) against reading the event's
attributes in Rust.

    python/bench/run                                    # builds a release wheel, then:
    python python/bench/middleware_overhead.py --messages 2000 --rounds 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from penguiflow import FlowEvent, Headers, Message, Node, NodePolicy, create

MODES = ("none", "noop", "prometheus", "otel", "flowtel")
TERMINAL = {"node_success", "node_error", "node_timeout"}


# --- the flow -------------------------------------------------------------


async def parse(msg: Message, _ctx: Any) -> Message:
    return msg


async def enrich(msg: Message, _ctx: Any) -> Message:
    return msg


async def respond(msg: Message, _ctx: Any) -> Message:
    return msg


class Sample:
    """One batch: wall time and CPU of the event loop's thread while the
    messages move, and CPU of the process's other threads (exporters,
    flowtel's mapping) until the mode's telemetry is flushed."""

    def __init__(self, wall: float, loop_cpu: float, other_cpu: float) -> None:
        self.wall, self.loop_cpu, self.other_cpu = wall, loop_cpu, other_cpu


async def batch(middlewares: list[Callable[..., Any]], messages: int, settle: Callable[[], Any]) -> Sample:
    """Move ``messages`` messages through a fresh flow, then ``settle()``
    (flush the mode's telemetry, untimed) so that no mode's background work
    spills into the next batch."""
    policy = NodePolicy(timeout_s=5, max_retries=0)
    n_parse = Node(parse, name="parse", policy=policy)
    n_enrich = Node(enrich, name="enrich", policy=policy)
    n_respond = Node(respond, name="respond", policy=policy)
    flow = create(n_parse.to(n_enrich), n_enrich.to(n_respond), n_respond.to(), middlewares=middlewares)
    flow.run()
    msgs = [Message(payload=i, headers=Headers(tenant="acme")) for i in range(messages)]

    async def produce() -> None:
        for m in msgs:
            await flow.emit(m)

    async def consume() -> None:
        for _ in range(messages):
            await flow.fetch()

    t0, p0, w0 = time.thread_time(), time.process_time(), time.perf_counter()
    await asyncio.gather(produce(), consume())
    wall = time.perf_counter() - w0
    loop_cpu = time.thread_time() - t0
    await flow.stop()
    settle()
    other_cpu = (time.process_time() - p0) - (time.thread_time() - t0)
    return Sample(wall, loop_cpu, other_cpu)


# --- the middlewares ------------------------------------------------------


async def noop_middleware(event: FlowEvent) -> None:
    """The floor: PenguiFlow's own cost of calling and awaiting one more
    middleware, with nothing done in it."""


def prometheus_middleware() -> Callable[..., Any]:
    """Seed 000's middleware, verbatim (its HTTP server is left out: idle, it costs nothing)."""
    from prometheus_client import Counter, Gauge, Histogram

    node_events = Counter("penguiflow_node_events_total", "Runtime node events", labelnames=("event_type", "node_name"))
    node_latency_ms = Histogram(
        "penguiflow_node_latency_ms",
        "Runtime node latency (ms)",
        labelnames=("event_type", "node_name"),
        buckets=(5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
    )
    queue_depth = Gauge("penguiflow_queue_depth_total", "Combined incoming+outgoing queue depth", labelnames=("node_name",))

    async def metrics_middleware(event: FlowEvent) -> None:
        node = event.node_name or "unknown"
        node_events.labels(event.event_type, node).inc()
        queue_depth.labels(node).set(float(event.queue_depth))
        if event.latency_ms is not None:
            node_latency_ms.labels(event.event_type, node).observe(float(event.latency_ms))

    return metrics_middleware


class OtelMiddleware:
    """What a user writes with the OpenTelemetry Python SDK: one span per
    attempt (start ``ts - latency``) in the run's trace, a counter per event
    and a duration histogram, exported over OTLP/gRPC."""

    def __init__(self, endpoint: str) -> None:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

        resource = Resource.create({"service.name": "bench-otel"})
        self.exporter = CountingSpanExporter(OTLPSpanExporter(endpoint=endpoint, insecure=True))
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.exporter))
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True), 10_000)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        tracer = self.tracer_provider.get_tracer("bench")
        meter = self.meter_provider.get_meter("bench")
        events = meter.create_counter("flow.events", unit="{event}")
        duration = meter.create_histogram("flow.node.duration", unit="s")
        self.created = 0

        async def middleware(event: FlowEvent) -> None:
            node = event.node_name or "unknown"
            events.add(1, {"flow.event.type": event.event_type, "flow.node.name": node})
            if event.event_type not in TERMINAL or event.latency_ms is None:
                return
            outcome = event.event_type.removeprefix("node_")
            duration.record(event.latency_ms / 1000, {"flow.node.name": node, "flow.node.outcome": outcome})
            parent = trace.set_span_in_context(
                NonRecordingSpan(
                    SpanContext(int(event.trace_id, 16), random.getrandbits(64), True, TraceFlags(TraceFlags.SAMPLED))
                )
            )
            end_ns = int(event.ts * 1e9)
            span = tracer.start_span(
                node,
                context=parent,
                start_time=end_ns - int(event.latency_ms * 1e6),
                attributes={"flow.node.attempt": event.attempt, "flow.node.outcome": outcome},
            )
            if outcome != "success":
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=end_ns)
            self.created += 1

        self.middleware = middleware

    def spans(self) -> dict[str, int]:
        """Spans made and exported so far (after a flush)."""
        self.tracer_provider.force_flush()
        return {"created": self.created, "lost": self.created - self.exporter.exported}

    def finish(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def counting_span_exporter_class() -> type:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Counting(SpanExporter):
        """Counts the spans its exporter delivered."""

        def __init__(self, inner: SpanExporter) -> None:
            self.inner = inner
            self.exported = 0

        def export(self, spans):  # noqa: ANN001, ANN201
            result = self.inner.export(spans)
            if result is SpanExportResult.SUCCESS:
                self.exported += len(spans)
            return result

        def shutdown(self) -> None:
            self.inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return self.inner.force_flush(timeout_millis)

    return Counting


def CountingSpanExporter(inner: Any) -> Any:  # noqa: N802 - a class, built lazily
    return counting_span_exporter_class()(inner)


# --- the collector --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_rotel(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import rotel

    agent = os.environ.get("ROTEL_AGENT") or str(Path(rotel.__file__).parent / "rotel-agent")
    grpc, http = free_port(), free_port()
    out = open(log, "wb")
    proc = subprocess.Popen(
        [agent, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}", "--otlp-http-endpoint",
         f"127.0.0.1:{http}", "--exporter", "blackhole"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", grpc), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"rotel-agent did not start:\n{log.read_text()}") from None
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{grpc}"


# --- per-call cost --------------------------------------------------------


def per_call(middlewares: dict[str, Callable[..., Any]], calls: int) -> dict[str, float]:
    """Median ns per call of each callable on a real FlowEvent (5 repeats),
    inside a running event loop, as PenguiFlow calls a middleware (flowtel's
    converts its events a batch at a time there)."""
    return asyncio.run(_per_call(middlewares, calls))


async def _per_call(middlewares: dict[str, Callable[..., Any]], calls: int) -> dict[str, float]:
    ev = FlowEvent(
        event_type="node_success", ts=time.time(), node_name="enrich", node_id="5f760295d4f64963be5c8cafed03c502",
        trace_id="3e512c5b0a184257a25c215d19544e6a", attempt=0, latency_ms=12.5, queue_depth_in=1,
        queue_depth_out=0, outgoing_edges=1, queue_maxsize=64, trace_pending=1, trace_inflight=1,
        trace_cancelled=False, extra={},
    )
    out = {}
    for name, call in middlewares.items():
        runs = []
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                call(ev)
            runs.append((time.perf_counter_ns() - t0) / calls)
        out[name] = statistics.median(runs)
    return out


def drive(mw: Callable[..., Any]) -> Callable[[FlowEvent], None]:
    """Call an async middleware the way PenguiFlow does (``await mw(event)``
    inside a coroutine); none of these suspends, so one ``send`` runs it."""

    async def once(ev: FlowEvent) -> None:
        await mw(ev)

    def call(ev: FlowEvent) -> None:
        try:
            once(ev).send(None)
        except StopIteration:
            pass

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages (runs) per batch")
    parser.add_argument("--rounds", type=int, default=15, help="batches per mode")
    parser.add_argument("--calls", type=int, default=20000, help="calls per per-call timing")
    args = parser.parse_args()

    import flowtel

    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="flowtel-bench-"))
    rotel, endpoint = start_rotel(workdir / "rotel.log")
    try:
        # respond sends its results to the caller: its success ends a run at
        # once (docs/RUN_END.md), so no run waits for the idle timeout.
        pipeline = flowtel.Flowtel(
            endpoint=endpoint, service_name="bench-flowtel", flow_name="bench", run_end_nodes=["respond"]
        )
        otel = OtelMiddleware(endpoint)
        lists = {
            "none": [],
            "noop": [noop_middleware],
            "prometheus": [prometheus_middleware()],
            "otel": [otel.middleware],
            "flowtel": [pipeline.middleware()],
        }
        samples: dict[str, list[Sample]] = {m: [] for m in MODES}
        settle = {
            "none": lambda: None,
            "noop": lambda: None,
            "prometheus": lambda: None,
            "otel": otel.tracer_provider.force_flush,
            "flowtel": lambda: pipeline.flush(timeout=30),
        }
        asyncio.run(batch([], 200, settle["none"]))  # warm-up
        for _ in range(args.rounds):
            order = list(MODES)
            random.shuffle(order)
            for mode in order:
                samples[mode].append(asyncio.run(batch(lists[mode], args.messages, settle[mode])))
        otel_spans = otel.spans()  # before the per-call timings add their own
        calls = per_call(
            {
                "noop (the floor)": drive(noop_middleware),
                "prometheus": drive(lists["prometheus"][0]),
                "otel": drive(otel.middleware),
                "flowtel": drive(lists["flowtel"][0]),
                "flowtel via JSON": lambda ev: pipeline.record(json.dumps(ev.to_payload())),
                "flowtel via to_payload() dict": lambda ev: pipeline.record(ev.to_payload()),
            },
            args.calls,
        )
        t0 = time.monotonic()
        pipeline.shutdown(timeout=60)
        flowtel_stats = pipeline.stats()
        shutdown_s = time.monotonic() - t0
        otel.finish()
    finally:
        rotel.kill()
        rotel.wait()

    def median(mode: str, what: str) -> float:
        return statistics.median(getattr(x, what) for x in samples[mode])

    base_wall, base_loop = median("none", "wall"), median("none", "loop_cpu")
    events_per_batch = args.messages * 6
    print(f"PenguiFlow {args.messages} messages x 3 nodes ({events_per_batch} FlowEvents) per batch, "
          f"{args.rounds} rounds, modes interleaved; exporters -> rotel-agent (blackhole) on loopback")
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"flowtel {flowtel.__version__}, load average before: {load_before}\n")
    print("| middleware | median batch | per message | overhead | above the no-op floor | event-loop thread CPU | "
          "other threads' CPU per event | spans lost |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    lost = {
        "none": "-",
        "noop": "- (no spans)",
        "prometheus": "- (no spans)",
        "otel": f"{otel_spans['lost']} of {otel_spans['created']}",
        "flowtel": f"{flowtel_stats['spans_dropped']} of {flowtel_stats['spans_created']}",
    }
    floor_wall = median("noop", "wall")
    for mode in MODES:
        wall, loop = median(mode, "wall"), median(mode, "loop_cpu")
        over = "-" if mode == "none" else f"{(wall / base_wall - 1) * 100:+.1f}%"
        above = "-" if mode in ("none", "noop") else f"{(wall / floor_wall - 1) * 100:+.1f}%"
        loop_over = f"{loop * 1e3:.0f} ms" + ("" if mode == "none" else f" ({(loop / base_loop - 1) * 100:+.1f}%)")
        other = median(mode, "other_cpu") / events_per_batch * 1e6
        print(f"| {mode} | {wall * 1e3:.0f} ms | {wall / args.messages * 1e6:.0f} µs | {over} | {above} | "
              f"{loop_over} | {other:.1f} µs | {lost[mode]} |")
    print("\n| one middleware call on a FlowEvent | ns |")
    print("| --- | --- |")
    for name, ns in calls.items():
        print(f"| {name} | {ns:.0f} |")
    print(f"\nflowtel: {json.dumps({k: v for k, v in flowtel_stats.items() if v})}; shutdown {shutdown_s:.2f} s")
    ok = flowtel_stats["spans_dropped"] == 0 and flowtel_stats["events_dropped"] == 0
    ok = ok and flowtel_stats["spans_exported"] == flowtel_stats["spans_created"]
    print("flowtel lost nothing" if ok else "flowtel LOST DATA")
    print(f"runs shed (ended early to stay within max_open_runs): {flowtel_stats['runs_shed']}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

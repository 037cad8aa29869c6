"""The middleware inside a live flow: what it does with every kind of input,
next to other middlewares, from other threads; and ``record()`` for other
runtimes. Each test runs real PenguiFlow flows into a real rotel-agent
through a pipeline of its own (``flowtel.Flowtel``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import threading
import time
import types
import urllib.error
import urllib.request

import flowtel
import pytest
from penguiflow import FlowEvent

import flows
from conftest import Collector, check_run, wait_until

EVENTS_DROPPED = "flowtel.sdk.events.dropped"


def pipeline(collector: Collector, **settings) -> flowtel.Flowtel:
    return flowtel.Flowtel(endpoint=collector.grpc, flow_name=flows.FLOW_NAME, **settings)


def event(**fields) -> FlowEvent:
    base = dict(
        event_type="node_success", ts=time.time(), node_name="n", node_id="n-1",
        trace_id="3e512c5b0a184257a25c215d19544e6a", attempt=0, latency_ms=5.0, queue_depth_in=0,
        queue_depth_out=0, outgoing_edges=1, queue_maxsize=64, trace_pending=None, trace_inflight=0,
        trace_cancelled=False, extra={},
    )
    return FlowEvent(**{**base, **fields})


def test_the_awaitable_is_already_complete(collector: Collector) -> None:
    mw = pipeline(collector).middleware()
    done = mw(event())
    it = done.__await__()
    with pytest.raises(StopIteration) as stop:
        next(it)
    assert stop.value.value is None

    async def many() -> list[None]:
        return await asyncio.gather(*(mw(event(node_name=f"n{i}")) for i in range(100)))

    assert asyncio.run(many()) == [None] * 100


def at_collector(collector: Collector, node: str) -> bool:
    """A span of node ``node`` reached the collector (a unique name)."""
    return f"Str({node})" in collector.text()


def test_a_batch_that_never_fills_goes_out_on_the_loops_timer(collector: Collector) -> None:
    """The middleware converts its events a batch at a time; a batch that
    does not fill is converted by a timer on the running loop: no flush, no
    stats(), nothing but the loop running on."""
    mw = pipeline(collector).middleware()

    async def main() -> None:
        await mw(event(node_name="timer-drained", ts=time.time()))
        deadline = time.monotonic() + 20
        while not at_collector(collector, "timer-drained"):
            assert time.monotonic() < deadline, "the span never reached the collector"
            await asyncio.sleep(0.02)

    asyncio.run(main())


def test_the_last_batch_goes_out_when_asyncio_run_closes_its_loop(collector: Collector) -> None:
    """asyncio.run() returning closes its loop before the batch's timer
    fires: the batch is converted then, not at the next flowtel call."""
    mw = pipeline(collector).middleware()

    async def main() -> None:
        await mw(event(node_name="loop-closed", ts=time.time()))

    asyncio.run(main())
    wait_until(lambda: at_collector(collector, "loop-closed"), 20, "the span at the collector")


def test_a_forked_child_leaves_the_parents_batch_to_the_parent(collector: Collector) -> None:
    p = pipeline(collector)
    mw = p.middleware()

    async def main() -> int:
        await mw(event(node_name="before-fork", ts=time.time()))  # kept in the batch
        pid = os.fork()
        if pid == 0:
            os._exit(0 if p.stats()["events_recorded"] == 0 else 3)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    assert asyncio.run(main()) == 0, "the child recorded its parent's event"
    assert p.stats()["events_recorded"] == 1


def test_roots_go_out_at_each_runs_last_event_not_after_the_idle_timeout(collector: Collector) -> None:
    """PenguiFlow emits no run-end event. With the flow's last node named
    (``run_end_nodes``), every kind of run (success, retry, terminal
    timeout, cancellation, deadline skip, runs in parallel) has its root
    span at the collector at once, with no flush, while the idle timeout
    (30 s) is far away; nothing is shed."""
    p = pipeline(collector, run_end_nodes=["summarize"])
    capture = asyncio.run(flows.run([p.middleware()], extra_runs=10))
    done = time.monotonic()
    runs = {e["trace_id"] for e in capture.payloads if e.get("trace_id")}
    assert len(runs) == len(flows.SCENARIOS) + 10
    wait_until(lambda: collector.text().count("Str(last_event)") == len(runs), 15,
               f"{len(runs)} roots ended by their last event at the collector")
    assert time.monotonic() - done < 30, "not before the idle timeout"
    assert p.stats()["runs_shed"] == 0
    p.shutdown()
    assert collector.text().count("Str(last_event)") == len(runs), "a run ended twice"
    check_run(collector, capture.payloads)


def test_what_cannot_be_mapped_is_counted_never_raised(collector: Collector) -> None:
    p = pipeline(collector)
    mw = p.middleware()

    class Exploding:
        event_type = "node_start"

        @property
        def ts(self) -> float:
            raise RuntimeError("no clock")

    unmappable = [
        types.SimpleNamespace(event_type="node_start"),  # no ts
        event(ts="yesterday"),
        event(attempt="1"),
        event(attempt=-1),
        event(node_name=7),
        event(queue_depth_in=1.5),
        Exploding(),
        42,
        None,
        "not json",
        {"event": "node_start"},  # neither ts nor any FlowEvent field
    ]
    invalid = [event(ts=math.nan), event(latency_ms=-1.0)]  # right types, broken contract

    @dataclasses.dataclass(frozen=True)
    class FutureFlowEvent:
        """A later PenguiFlow: a field flowtel does not know, one it dropped."""

        event_type: str
        ts: float
        node_name: str
        trace_id: str
        latency_ms: float
        cost_usd: float

    odd_but_fine = [
        event(extra={"exception": ValueError("boom"), "nested": {"a": [1, {"b": math.inf}]},
                     "big": 2**70, "set": {1, 2}, 3: "int key", "deep": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}),
        FutureFlowEvent("node_success", time.time(), "future", "3e512c5b0a184257a25c215d19544e6b", 3.0, 0.2),
        event(attempt=True, latency_ms=7),  # bool is an int, int is a number
        # Fields the mapping never reads are not read at all (each read
        # costs the event loop), so their types cannot cost the event.
        event(trace_cancelled="no", outgoing_edges=None, queue_maxsize="64"),
    ]

    async def feed() -> None:
        for ev in unmappable + invalid + odd_but_fine:
            assert await mw(ev) is None

    asyncio.run(feed())
    s = p.stats()
    assert s["events_unmappable"] == len(unmappable), s
    assert s["events_invalid"] == len(unmappable) + len(invalid), s
    assert s["events_recorded"] == len(odd_but_fine), s
    p.shutdown()
    # The same count reaches the collector as flowtel's self-metric.
    check_run(collector, counters=[(EVENTS_DROPPED, "flowtel.reason=invalid", len(unmappable) + len(invalid))])


def test_beside_a_slow_and_a_failing_middleware(collector: Collector, caplog: pytest.LogCaptureFixture) -> None:
    p = pipeline(collector)
    calls = {"slow": 0, "failing": 0}

    async def slow(_event) -> None:
        calls["slow"] += 1
        await asyncio.sleep(0.002)

    async def failing(_event) -> None:
        calls["failing"] += 1
        raise RuntimeError("middleware bug")

    with caplog.at_level(logging.ERROR, logger="penguiflow"):
        capture = asyncio.run(flows.run([slow, p.middleware(), failing], extra_runs=5))
    p.shutdown()
    errors = [r for r in caplog.records if r.getMessage() == "middleware_error"]
    n = len(capture.payloads)
    assert calls == {"slow": n, "failing": n}
    # Every middleware_error is the failing middleware's, none is flowtel's.
    assert len(errors) == n and all("middleware bug" in repr(getattr(r, "exception", "")) for r in errors)
    assert p.stats()["events_recorded"] == n
    check_run(collector, capture.payloads)


def test_flows_in_two_loop_threads_and_record_from_a_plain_thread(collector: Collector) -> None:
    p = pipeline(collector)
    mw = p.middleware()
    captures: list[flows.Capture] = []
    errors: list[BaseException] = []

    def flow_thread() -> None:
        try:
            captures.append(asyncio.run(flows.run([mw], extra_runs=3)))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    # A plain thread replays the runs of a flow that had no flowtel.
    replayed = asyncio.run(flows.run([], kinds=("ok", "retry", "timeout")))
    recorded: list[bool] = []
    plain = threading.Thread(target=lambda: recorded.extend(p.record(e) for e in replayed.payloads))
    threads = [threading.Thread(target=flow_thread) for _ in range(2)] + [plain]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert recorded == [True] * len(replayed.payloads)
    p.shutdown()
    check_run(collector, captures[0].payloads + captures[1].payloads + replayed.payloads)


def test_record_takes_payload_dicts_and_json(collector: Collector) -> None:
    """A non-PenguiFlow runtime or a replay tool: to_payload() dicts, their
    JSON as str and bytes, all through the SDK's parser."""
    capture = asyncio.run(flows.run([]))
    p = pipeline(collector)
    for i, payload in enumerate(capture.payloads):
        shape = (payload, json.dumps(payload), json.dumps(payload).encode())[i % 3]
        assert p.record(shape) is True
    assert p.record({"event": "node_start"}) is False  # counted, not raised
    assert p.stats()["events_unmappable"] == 1
    p.shutdown()
    check_run(collector, capture.payloads)


def test_a_full_queue_drops_and_counts_without_blocking(collector: Collector) -> None:
    p = pipeline(collector, queue_capacity=1)
    mw = p.middleware()
    n = 20_000
    t0 = time.monotonic()
    for i in range(n):
        mw(event(node_name=f"n{i % 10}", ts=time.time()))
    elapsed = time.monotonic() - t0
    s = p.stats()
    assert s["events_dropped_queue_full"] > 0, s
    assert s["events_recorded"] + s["events_dropped_queue_full"] == n, s
    p.shutdown()
    check_run(collector, counters=[(EVENTS_DROPPED, "flowtel.reason=queue_full", s["events_dropped_queue_full"])])
    print(f"{n} middleware calls with a full queue: {elapsed / n * 1e6:.2f} us each")


def test_metrics_on_a_prometheus_scrape_endpoint_spans_over_otlp(collector: Collector) -> None:
    token = "scrape-s3cret"
    p = pipeline(collector, metrics_exporters=["prometheus"], prometheus_address="127.0.0.1:0",
                 prometheus_bearer_token=token)
    address = p.prometheus_address()
    assert address is not None and address.startswith("127.0.0.1:") and not address.endswith(":0"), address
    assert pipeline(collector).prometheus_address() is None
    capture = asyncio.run(flows.run([p.middleware()]))
    p.flush()
    url = f"http://{address}/metrics"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401
    scrape = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(scrape, timeout=10) as r:
        body = r.read().decode()
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith("flow_events_total{"))
    assert counted == len(capture.payloads), body
    assert "trace_id" not in body and "node_id" not in body
    p.shutdown()
    check_run(collector, capture.payloads, spans_only=True)
    assert "flow.events" not in collector.text(), "metrics went to the scrape endpoint only"


def test_settings_errors_are_raised_at_construction() -> None:
    with pytest.raises(TypeError, match="unknown flowtel setting `endpiont`"):
        flowtel.Flowtel(endpiont="http://x:4317")
    with pytest.raises(ValueError, match="use \"grpc\" or \"http/protobuf\""):
        flowtel.Flowtel(protocol="http")
    with pytest.raises(TypeError, match="not a single str"):
        flowtel.Flowtel(span_extra_keys="exception")
    with pytest.raises(ValueError, match="finite number of seconds"):
        flowtel.Flowtel(timeout=-1)
    with pytest.raises(ValueError, match="looks like a secret"):
        flowtel.Flowtel(console=True, span_extra_keys=["api_token"])
    with pytest.raises(ValueError, match="unknown exporter `statsd`"):
        flowtel.Flowtel(metrics_exporters=["statsd"])
    with pytest.raises(TypeError, match="mapping of str to str"):
        flowtel.Flowtel(headers=["x-api-key"])
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        import os

        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "carrier-pigeon"
        try:
            flowtel.Flowtel(endpoint="http://127.0.0.1:4317")
        finally:
            del os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"]
    # One list of settings: the typed one matches the native one.
    assert tuple(flowtel.Settings.__annotations__) == flowtel._flowtel.SETTINGS

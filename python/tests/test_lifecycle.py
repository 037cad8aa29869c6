"""The pipeline over a process's life: the process-wide pipeline's rules,
pre-fork servers (``os.fork``, ``multiprocessing`` with fork, gunicorn),
shutdown and exit with the collector down (bounded, drops counted)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import flowtel
import pytest

import flows
from conftest import HERE, Collector, check_run, clean_otel_env, free_port, listening, run_script, wait_until


def read_events(directory: Path) -> tuple[list[dict], set[str]]:
    events, pids = [], set()
    for f in directory.glob("*.jsonl"):
        pids.add(f.stem)
        events += [json.loads(line) for line in f.read_text().splitlines()]
    return events, pids


def test_process_wide_pipeline_is_shared_and_first_settings_win(collector: Collector, workdir: Path) -> None:
    code = f"""
import asyncio, json, sys, warnings
sys.path.insert(0, {str(HERE)!r})
import flowtel, flows
# Before first use: zero stats, flush and shutdown do nothing.
assert flowtel.stats()["events_recorded"] == 0 and flowtel.flush() is None and flowtel.shutdown() is None
first = flowtel.middleware(flow_name="one", endpoint={collector.grpc!r})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    second = flowtel.middleware(flow_name="two")   # ignored, with a warning
    third = flowtel.middleware()                   # no settings: no warning
assert [str(w.message).count("first settings win") for w in caught] == [1], caught
assert flowtel.pipeline() is flowtel.pipeline()
a = asyncio.run(flows.run([second], kinds=("ok", "retry")))
b = asyncio.run(flows.run([third], kinds=("timeout",)))
open({str(workdir / "events.jsonl")!r}, "w").writelines(json.dumps(p) + "\\n" for p in a.payloads + b.payloads)
flowtel.shutdown()
assert flowtel.stats()["events_recorded"] == len(a.payloads) + len(b.payloads)
assert first(a.payloads[0]) is not None and flowtel.stats()["events_after_shutdown"] == 1
"""
    out = run_script(["-c", code])
    assert out.returncode == 0, out.stderr
    check_run(collector, workdir / "events.jsonl", flow_name="one")


@pytest.mark.parametrize("mode", ["os-fork", "mp-fork"])
def test_forked_children_get_a_working_pipeline(mode: str, collector: Collector, workdir: Path) -> None:
    out = run_script([str(HERE / "forked.py"), "--mode", mode, "--children", "2", "--dir", str(workdir)],
                     env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc})
    assert out.returncode == 0, out.stderr
    events, pids = read_events(workdir)
    assert len(pids) == 3, pids  # the parent and two children
    # Several processes, one collector: their cumulative metrics share series,
    # so the spans are checked (every run whole, every attempt once).
    check_run(collector, events, spans_only=True)


def test_gunicorn_preload_workers(collector: Collector, workdir: Path) -> None:
    port = free_port()
    env = {**clean_otel_env(), "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc,
           "FLOWTEL_TEST_EVENTS_DIR": str(workdir), "PYTHONPATH": str(HERE)}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "--graceful-timeout", "20", "gunicorn_app:app"],
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: listening(port) or server.poll() is not None, 30, "gunicorn listening")
        assert server.poll() is None, server.stdout.read() if server.stdout else ""
        pids: set[str] = set()

        def ask() -> None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
                pids.add(r.read().decode())

        def both_workers_answered() -> bool:
            callers = [threading.Thread(target=ask) for _ in range(2)]
            for t in callers:
                t.start()
            for t in callers:
                t.join()
            return len(pids) >= 2

        wait_until(both_workers_answered, 60, "requests served by both workers", interval=0)
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: workers finish, exit normally
        logs, _ = server.communicate(timeout=60)
    assert server.returncode == 0, logs
    events, files = read_events(workdir)
    assert files >= pids and len(files) >= 2, (files, pids)
    check_run(collector, events, spans_only=True)


def test_shutdown_with_the_collector_down_is_bounded_and_counts_drops() -> None:
    p = flowtel.Flowtel(endpoint=f"http://127.0.0.1:{free_port()}", flow_name=flows.FLOW_NAME, timeout=0.5)
    mw = p.middleware()
    capture = asyncio.run(flows.run([mw]))
    t0 = time.monotonic()
    with pytest.raises(flowtel.FlushError):
        p.shutdown(timeout=1.0)
    elapsed = time.monotonic() - t0
    assert elapsed < 3.0, elapsed  # the 1 s timeout plus scheduling on a busy machine
    s = p.stats()
    assert s["events_recorded"] == len(capture.payloads), s
    assert s["spans_created"] > 0 and s["spans_exported"] == 0, s
    # Export loops still in a request at the deadline add their spans as
    # they give up, just after shutdown returns.
    wait_until(lambda: p.stats()["spans_dropped"] == s["spans_created"], 10, f"every span counted dropped: {p.stats()}")
    assert asyncio.run(_await(mw, capture)) is None  # after shutdown: counted, not raised
    assert p.stats()["events_after_shutdown"] == 1


async def _await(mw: flowtel.Middleware, capture: flows.Capture) -> None:
    return await mw(capture.payloads[0])


def test_exit_with_the_collector_down_is_bounded(workdir: Path) -> None:
    events = workdir / "events.jsonl"
    out = run_script(
        [str(HERE / "flows.py"), "--events", str(events), "--runs", "5", "--settings", json.dumps({"exit_timeout": 1.0})],
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
    )
    exited = time.time()
    assert out.returncode == 0, out.stderr
    done_at = json.loads(out.stdout.strip().splitlines()[-1])["done_at"]
    # exit_timeout (1 s) plus interpreter teardown, well below the default 5 s.
    assert exited - done_at < 3.5, exited - done_at
    assert "could not be delivered before the shutdown deadline" in out.stderr, out.stderr[-2000:]


def test_exit_flush_waits_for_a_slow_start(collector: Collector, workdir: Path) -> None:
    """Events recorded just before the interpreter exits are delivered."""
    code = f"""
import flowtel, time
p = flowtel.Flowtel(endpoint={collector.grpc!r}, flow_name="late")
assert p.record({{"event": "node_success", "ts": time.time(), "node_name": "last", "node_id": "l1",
                  "trace_id": "3e512c5b0a184257a25c215d19544e6a", "latency_ms": 2.0}})
"""
    assert run_script(["-c", code]).returncode == 0
    wait_until(lambda: "Name           : last" in collector.text() or "-> Name: last" in collector.text()
               or "Name: last" in collector.text(), 20, "the last span at the collector")

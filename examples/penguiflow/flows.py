"""Run real PenguiFlow flows and write their structured JSON log.

``--flow support`` (the default; ``sample.log``): five runs through one flow
(fetch -> triage -> summarize):

  ok        every node succeeds
  retry     triage raises once, is retried, succeeds
  timeout   summarize times out twice and fails terminally (node_failed)
  cancel    the run is cancelled while fetch works (trace_cancel_*)
  deadline  the message's deadline passes before triage (deadline_skip)

``--flow incident`` (``incident.log``): three runs through a fan-out flow
(ingest -> enrich -> answer, ingest -> audit) where enrich fails once in
every run and recovers on its retry:

  recovered         nothing else fails: the run succeeds
  recover_then_fail answer then raises on every attempt and fails terminally
                    (node_error, node_retry, node_error, node_failed)
  several_fail      audit fails terminally (no retries) and answer too

The log (``configure_logging(structured=True)`` format, plus a few unrelated
lines as a real service log has) goes to --log; every FlowEvent, as
``FlowEvent.to_payload()``, is also captured by a second middleware to
--events so tests can compare what flowtel delivered with what PenguiFlow
emitted.

    python examples/penguiflow/flows.py --log app.log --events events.jsonl
    python examples/penguiflow/flows.py --flow incident --log incident.log --events events.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.logging import StructuredFormatter

SLOW = 0.3  # how long a "slow" node works, seconds

calls: dict[str, int] = {}


def scenario(msg: Message) -> str:
    return msg.payload.get("scenario", "ok") if isinstance(msg.payload, dict) else "ok"


async def fetch(msg: Message, _ctx) -> Message:
    await asyncio.sleep(SLOW if scenario(msg) in ("cancel", "deadline") else 0.01)
    return msg


async def triage(msg: Message, _ctx) -> Message:
    await asyncio.sleep(0.02)
    key = f"triage:{msg.trace_id}"
    calls[key] = calls.get(key, 0) + 1
    if scenario(msg) == "retry" and calls[key] == 1:
        raise ConnectionError("upstream returned 503")
    return msg


async def summarize(msg: Message, _ctx) -> Message:
    await asyncio.sleep(SLOW if scenario(msg) == "timeout" else 0.03)
    return msg


async def ingest(msg: Message, _ctx) -> Message:
    await asyncio.sleep(0.01)
    return msg


async def enrich(msg: Message, _ctx) -> Message:
    await asyncio.sleep(0.02)
    key = f"enrich:{msg.trace_id}"
    calls[key] = calls.get(key, 0) + 1
    if calls[key] == 1:
        raise ConnectionError("geo service reset the connection")
    return msg


async def answer(msg: Message, _ctx) -> Message:
    await asyncio.sleep(0.02)
    if scenario(msg) in ("recover_then_fail", "several_fail"):
        raise ValueError("answer schema drift: no 'citations' field")
    return msg


async def audit(msg: Message, _ctx) -> Message:
    await asyncio.sleep(0.01)
    if scenario(msg) == "several_fail":
        raise PermissionError("audit store refused the write")
    return msg


def open_logs(log_path: str) -> logging.Logger:
    """PenguiFlow's structured log and a plain-text app logger, one file."""
    open(log_path, "w").close()  # both handlers append to one file
    handler = logging.FileHandler(log_path, mode="a", encoding="utf-8")
    handler.setFormatter(StructuredFormatter())
    pf_logger = logging.getLogger("penguiflow")
    pf_logger.setLevel(logging.DEBUG)
    pf_logger.handlers[:] = [handler]

    # An unrelated, plain-text logger writing to the same file.
    app_handler = logging.FileHandler(log_path, mode="a", encoding="utf-8")
    app_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    app = logging.getLogger("app")
    app.setLevel(logging.INFO)
    app.handlers[:] = [app_handler]
    app.propagate = False
    return app


async def incident(log_path: str, events_path: str) -> None:
    app = open_logs(log_path)
    captured = open(events_path, "w", encoding="utf-8")
    # A run is over when both branch ends (answer, audit) have succeeded or
    # failed terminally: wait for that instead of a fixed time.
    ends: dict[str, set[str]] = {}
    finished: dict[str, asyncio.Event] = {}

    async def capture(event) -> None:
        captured.write(json.dumps(event.to_payload()) + "\n")
        if event.event_type in ("node_success", "node_failed") and event.node_name in ("answer", "audit"):
            ends.setdefault(event.trace_id, set()).add(event.node_name)
            if len(ends[event.trace_id]) == 2:
                finished[event.trace_id].set()

    n_ingest = Node(ingest, name="ingest", policy=NodePolicy(timeout_s=5, max_retries=0))
    n_enrich = Node(enrich, name="enrich", policy=NodePolicy(timeout_s=5, max_retries=2, backoff_base=0.05))
    n_answer = Node(answer, name="answer", policy=NodePolicy(timeout_s=5, max_retries=1, backoff_base=0.05))
    n_audit = Node(audit, name="audit", policy=NodePolicy(timeout_s=5, max_retries=0))
    flow = create(
        n_ingest.to(n_enrich, n_audit),
        n_enrich.to(n_answer),
        n_answer.to(),
        n_audit.to(),
        middlewares=[capture],
    )
    flow.run()
    app.info("service started")
    for name in ["recovered", "recover_then_fail", "several_fail"]:
        msg = Message(payload={"scenario": name}, headers=Headers(tenant="acme"))
        finished[msg.trace_id] = asyncio.Event()
        app.info("run %s: trace %s", name, msg.trace_id)
        await flow.emit(msg)
        await asyncio.wait_for(finished[msg.trace_id].wait(), timeout=30)
    app.info("service stopping")
    await flow.stop()
    captured.close()


async def main(log_path: str, events_path: str) -> None:
    app = open_logs(log_path)
    captured = open(events_path, "w", encoding="utf-8")

    async def capture(event) -> None:
        captured.write(json.dumps(event.to_payload()) + "\n")

    n_fetch = Node(fetch, name="fetch", policy=NodePolicy(timeout_s=5, max_retries=0))
    n_triage = Node(
        triage, name="triage", policy=NodePolicy(timeout_s=5, max_retries=2, backoff_base=0.05)
    )
    n_summarize = Node(
        summarize, name="summarize", policy=NodePolicy(timeout_s=0.1, max_retries=1, backoff_base=0.05)
    )
    flow = create(
        n_fetch.to(n_triage), n_triage.to(n_summarize), n_summarize.to(), middlewares=[capture]
    )
    flow.run()
    app.info("service started")
    for name in ["ok", "retry", "timeout", "cancel", "deadline"]:
        deadline = time.time() + SLOW / 2 if name == "deadline" else None
        msg = Message(payload={"scenario": name}, headers=Headers(tenant="acme"), deadline_s=deadline)
        app.info("run %s: trace %s", name, msg.trace_id)
        await flow.emit(msg)
        if name == "cancel":
            await asyncio.sleep(0.1)
            await flow.cancel(msg.trace_id)
        await asyncio.sleep(1.0)
    app.info("service stopping")
    await flow.stop()
    captured.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", required=True, help="structured log output")
    parser.add_argument("--events", required=True, help="captured FlowEvent payloads (JSON lines)")
    parser.add_argument("--flow", choices=["support", "incident"], default="support", help="which flow to run")
    args = parser.parse_args()
    asyncio.run((incident if args.flow == "incident" else main)(args.log, args.events))

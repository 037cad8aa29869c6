"""Real PenguiFlow flows for the tests: one flow (fetch -> triage -> summarize)
and five kinds of run, all in flight at once:

  ok        every node succeeds
  retry     triage raises once, is retried, succeeds
  timeout   summarize times out twice and fails terminally (node_failed)
  cancel    the run is cancelled while fetch works (trace_cancel_*)
  deadline  the message's deadline passes before triage (deadline_skip)

plus any number of extra ``ok`` runs. A second middleware captures every
FlowEvent as ``to_payload()``; the tests compare what flowtel delivered with
it (``flowtel-check-run``). Every wait is for an event, never a fixed time.

As a script it is a service using the process-wide pipeline, configured by
the environment and optional settings, which exits normally (the exit hook
delivers)::

    python flows.py --events EVENTS.jsonl [--runs N] [--settings JSON]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from penguiflow import Headers, Message, Node, NodePolicy, create

FLOW_NAME = "support-triage"
SLOW = 0.3  # how long a "slow" fetch works, seconds
SUMMARIZE_TIMEOUT = 0.25  # a timeout run's summarize works three times as long
SCENARIOS = ("ok", "retry", "timeout", "cancel", "deadline")
# The events that end each kind of run (event type, node). A run that
# should succeed also ends if a stalled machine made summarize time out:
# the checks compare with what happened, whatever it was.
END_EVENTS = {
    "ok": [("node_success", "summarize"), ("node_failed", "summarize")],
    "retry": [("node_success", "summarize"), ("node_failed", "summarize")],
    "timeout": [("node_failed", "summarize")],
    "cancel": [("trace_cancel_finish", None)],
    "deadline": [("deadline_skip", "triage")],
}


def scenario(msg: Message) -> str:
    return msg.payload.get("scenario", "ok") if isinstance(msg.payload, dict) else "ok"


async def fetch(msg: Message, _ctx: Any) -> Message:
    await asyncio.sleep(SLOW if scenario(msg) in ("cancel", "deadline") else 0.005)
    return msg


_triage_calls: dict[str, int] = {}


async def triage(msg: Message, _ctx: Any) -> Message:
    await asyncio.sleep(0.01)
    _triage_calls[msg.trace_id] = _triage_calls.get(msg.trace_id, 0) + 1
    if scenario(msg) == "retry" and _triage_calls[msg.trace_id] == 1:
        raise ConnectionError("upstream returned 503")
    return msg


async def summarize(msg: Message, _ctx: Any) -> Message:
    await asyncio.sleep(3 * SUMMARIZE_TIMEOUT if scenario(msg) == "timeout" else 0.01)
    return msg


class Capture:
    """The second middleware: every FlowEvent as to_payload(), and an
    asyncio.Event per awaited (trace, event type, node)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._waiting: dict[tuple[str | None, str, str | None], asyncio.Event] = {}

    async def __call__(self, event: Any) -> None:
        self.payloads.append(event.to_payload())
        for key in ((event.trace_id, event.event_type, event.node_name), (event.trace_id, event.event_type, None)):
            if key in self._waiting:
                self._waiting[key].set()

    def seen(self, trace_id: str | None, event_type: str, node: str | None = None) -> asyncio.Event:
        return self._waiting.setdefault((trace_id, event_type, node), asyncio.Event())

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for p in self.payloads:
                f.write(json.dumps(p, default=str) + "\n")


async def any_of(events: list[asyncio.Event]) -> None:
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()


def build(middlewares: Sequence[Callable[..., Any]]):
    n_fetch = Node(fetch, name="fetch", policy=NodePolicy(timeout_s=5, max_retries=0))
    n_triage = Node(triage, name="triage", policy=NodePolicy(timeout_s=5, max_retries=2, backoff_base=0.02))
    n_summarize = Node(
        summarize, name="summarize", policy=NodePolicy(timeout_s=SUMMARIZE_TIMEOUT, max_retries=1, backoff_base=0.02)
    )
    return create(n_fetch.to(n_triage), n_triage.to(n_summarize), n_summarize.to(), middlewares=list(middlewares))


async def run(
    middlewares: Sequence[Callable[..., Any]],
    *,
    extra_runs: int = 0,
    kinds: Sequence[str] = SCENARIOS,
    timeout: float = 30.0,
) -> Capture:
    """Run each kind of run once, plus ``extra_runs`` ok runs, concurrently
    through one flow with ``middlewares`` (the capture goes last); return
    the capture once every run has ended and the flow has stopped."""
    capture = Capture()
    flow = build([*middlewares, capture])
    flow.run()
    runs = [*kinds, *["ok"] * extra_runs]
    waits = []
    cancels = []
    for kind in runs:
        deadline = time.time() + SLOW / 2 if kind == "deadline" else None
        msg = Message(payload={"scenario": kind}, headers=Headers(tenant="acme"), deadline_s=deadline)
        ends = [capture.seen(msg.trace_id, t, node) for t, node in END_EVENTS[kind]]
        waits.append(any_of(ends))
        if kind == "cancel":
            cancels.append((msg.trace_id, capture.seen(msg.trace_id, "node_start", "fetch")))
        await flow.emit(msg)

    async def cancel_when_started(trace_id: str, started: asyncio.Event) -> None:
        await started.wait()
        await flow.cancel(trace_id)

    await asyncio.wait_for(
        asyncio.gather(*waits, *(cancel_when_started(t, s) for t, s in cancels)), timeout=timeout
    )
    await flow.stop()
    return capture


def quiet_penguiflow_logs() -> None:
    """Keep PenguiFlow's log (tracebacks of the planned errors) off standard
    error, except ``middleware_error``: the tests look for it."""
    handler = logging.StreamHandler()
    handler.addFilter(lambda record: record.getMessage() == "middleware_error")
    log = logging.getLogger("penguiflow")
    log.handlers[:] = [handler]
    log.propagate = False


def main() -> None:
    parser = argparse.ArgumentParser(description="a PenguiFlow service with flowtel.middleware()")
    parser.add_argument("--events", required=True, help="captured FlowEvent payloads (JSON lines)")
    parser.add_argument("--runs", type=int, default=0, help="extra ok runs in flight with the scenarios")
    parser.add_argument("--settings", default="{}", help="flowtel.middleware() settings, JSON")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()

    import flowtel

    quiet_penguiflow_logs()
    mw = flowtel.middleware(**json.loads(args.settings))
    if args.loop == "uvloop":
        import uvloop

        capture = uvloop.run(run([mw], extra_runs=args.runs))
    else:
        capture = asyncio.run(run([mw], extra_runs=args.runs))
    capture.write(args.events)
    print(json.dumps({"stats": flowtel.stats(), "done_at": time.time()}))
    # No shutdown here: the exit hook delivers what the pipeline holds.


if __name__ == "__main__":
    main()

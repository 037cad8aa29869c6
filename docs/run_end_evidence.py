"""What real PenguiFlow runs say about their own end (docs/RUN_END.md).

Runs real PenguiFlow flows of every shape the run-end rules must get right,
captures every FlowEvent with a middleware, and

- writes them, as ``FlowEvent.to_payload()`` JSON lines, to
  ``sdk/tests/fixtures/penguiflow_run_ends.jsonl`` (the Rust test
  ``sdk/tests/run_end.rs`` maps them and checks each run's end);
- prints each run's events with ``trace_pending`` / ``trace_inflight``
  (the tables in docs/RUN_END.md).

Each scenario's run has a fixed trace id, ``00..0N``, so that the test can
name it. Run it with the PenguiFlow the tests pin (3.11.2)::

    python/.venv-test/bin/python docs/run_end_evidence.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from penguiflow import FlowEvent, Headers, Message, Node, NodePolicy, create

FIXTURE = Path(__file__).resolve().parent.parent / "sdk/tests/fixtures/penguiflow_run_ends.jsonl"
ONCE = NodePolicy(timeout_s=2, max_retries=0)

events: list[FlowEvent] = []


async def capture(event: FlowEvent) -> None:
    events.append(event)


def trace(n: int) -> str:
    return f"{n:032x}"


async def ok(msg: Message, _ctx: Any) -> Message:
    return msg


async def slow(msg: Message, _ctx: Any) -> Message:
    await asyncio.sleep(0.05)
    return msg


async def fails(_msg: Message, _ctx: Any) -> Message:
    raise RuntimeError("boom")


async def fails_late(_msg: Message, _ctx: Any) -> Message:
    await asyncio.sleep(0.05)
    raise RuntimeError("late boom")


async def returns_none(_msg: Message, _ctx: Any) -> None:
    return None


_flaky_calls: dict[str, int] = {}


async def flaky(msg: Message, _ctx: Any) -> Message:
    _flaky_calls[msg.trace_id] = _flaky_calls.get(msg.trace_id, 0) + 1
    if _flaky_calls[msg.trace_id] == 1:
        raise ConnectionError("upstream returned 503")
    return msg


async def too_slow(msg: Message, _ctx: Any) -> Message:
    await asyncio.sleep(1.0)
    return msg


async def drive(flow: Any, msgs: list[Message], fetch: int, cancel: bool = False) -> None:
    """Emit ``msgs``, fetch ``fetch`` results, wait until the flow is quiet,
    stop it."""
    flow.run()
    for m in msgs:
        await flow.emit(m)
    if cancel:
        await asyncio.sleep(0.02)
        await flow.cancel(msgs[0].trace_id)
    for _ in range(fetch):
        await asyncio.wait_for(flow.fetch(), 5)
    # Quiet: no event for 0.3 s (every node here takes at most 0.25 s).
    seen = -1
    while seen != len(events):
        seen = len(events)
        await asyncio.sleep(0.3)
    await flow.stop()


def msg(n: int, **kw: Any) -> Message:
    return Message(payload={"n": n}, headers=Headers(tenant="acme"), trace_id=trace(n), **kw)


async def scenarios() -> list[tuple[int, str]]:
    out = []

    def linear(middle: Any, last: Any, retries: int = 0, timeout: float = 2.0, first: Any = ok) -> Any:
        a = Node(first, name="fetch", policy=ONCE)
        b = Node(middle, name="triage", policy=NodePolicy(timeout_s=2, max_retries=1, backoff_base=0.01))
        c = Node(last, name="summarize", policy=NodePolicy(timeout_s=timeout, max_retries=retries, backoff_base=0.01))
        return create(a.to(b), b.to(c), c.to(), middlewares=[capture])

    await drive(linear(ok, ok), [msg(1)], 1)
    out.append((1, "linear fetch → triage → summarize, success, result fetched"))
    await drive(linear(flaky, ok), [msg(2)], 1)
    out.append((2, "linear, triage fails once and is retried, success"))
    await drive(linear(ok, too_slow, retries=1, timeout=0.1), [msg(3)], 0)
    out.append((3, "linear, summarize times out twice: node_failed"))
    await drive(linear(ok, fails), [msg(4)], 0)
    out.append((4, "linear, summarize raises: node_failed"))
    await drive(linear(ok, ok, first=slow), [msg(5, deadline_s=time.time() + 0.02)], 1)
    out.append((5, "linear, the deadline passes before triage: deadline_skip"))
    await drive(linear(too_slow, ok), [msg(6)], 0, cancel=True)
    out.append((6, "linear, cancelled while triage works"))
    await drive(linear(ok, ok), [msg(7)], 0)
    out.append((7, "linear, success, result never fetched"))

    def fan_out(b_fn: Any, c_fn: Any, a_fn: Any = ok) -> Any:
        a = Node(a_fn, name="a", policy=ONCE)
        b = Node(b_fn, name="b", policy=ONCE)
        c = Node(c_fn, name="c", policy=ONCE)
        return create(a.to(b, c), b.to(), c.to(), middlewares=[capture])

    await drive(fan_out(ok, slow), [msg(11)], 2)
    out.append((11, "fan-out a → (b, c slow), both results fetched"))
    await drive(fan_out(ok, slow), [msg(12)], 0)
    out.append((12, "fan-out a → (b, c slow), results not fetched"))
    await drive(fan_out(fails, slow), [msg(13)], 1)
    out.append((13, "fan-out, b fails while c works, c's result fetched"))
    await drive(fan_out(ok, fails_late), [msg(14)], 1)
    out.append((14, "fan-out, c fails after b's result was fetched"))
    await drive(fan_out(ok, fails_late), [msg(15)], 0)
    out.append((15, "fan-out, c fails, b's result not fetched"))
    await drive(fan_out(ok, ok, a_fn=slow), [msg(16, deadline_s=time.time() + 0.02)], 1)
    out.append((16, "fan-out, the deadline passes while a works: two deadline_skips"))

    a, b = Node(ok, name="a", policy=ONCE), Node(returns_none, name="b", policy=ONCE)
    await drive(create(a.to(b), b.to(), middlewares=[capture]), [msg(21)], 0)
    out.append((21, "linear a → b, b returns None (no result)"))
    one = Node(ok, name="only", policy=ONCE)
    second = Message(payload={"n": 22.5}, headers=Headers(tenant="acme"), trace_id=trace(22))
    await drive(create(one.to(), middlewares=[capture]), [msg(22), second], 2)
    out.append((22, "one node (only), two messages under one trace id, both fetched"))
    return out


def main() -> None:
    # The planned failures' tracebacks stay off the output.
    logging.getLogger("penguiflow").setLevel(logging.CRITICAL + 1)
    described = asyncio.run(scenarios())
    lines = [json.dumps(e.to_payload(), default=str) for e in events if e.trace_id is not None]
    FIXTURE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for n, what in described:
        print(f"\n**{n}. {what}** (`{trace(n)}`)\n")
        print("| event | node | attempt | trace_pending | trace_inflight |")
        print("| --- | --- | --- | --- | --- |")
        for e in events:
            if e.trace_id == trace(n):
                print(f"| {e.event_type} | {e.node_name} | {e.attempt} | {e.trace_pending} | {e.trace_inflight} |")
    print(f"\n{len(lines)} events written to {FIXTURE}")


if __name__ == "__main__":
    main()

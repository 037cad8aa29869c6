"""Write N PenguiFlow-shaped structured-log lines (deterministic), for the
ingest throughput benchmark.

Runs of fetch -> triage -> summarize: node_start/node_success pairs, with a
node_error + node_retry every 10th run and a timeout + node_failed every 50th,
plus an unrelated plain-text line every 1000 lines. `trace_pending` and
`trace_inflight` are what PenguiFlow 3.11.2 reports on such runs
(docs/RUN_END.md), so a run ends at its last event with
`--run-end-node summarize`.

    python3 scripts/gen_events.py 1000000 /tmp/events.log
"""

import json
import sys
import uuid
import random


def main(n: int, path: str) -> None:
    rnd = random.Random(42)
    ts = 1_795_305_121.0
    written = 0
    run = 0
    node_ids = {name: uuid.UUID(int=rnd.getrandbits(128)).hex for name in ("fetch", "triage", "summarize")}
    with open(path, "w", encoding="utf-8") as f:

        def emit(event, node, trace, attempt, latency, level="INFO", **extra):
            nonlocal written, ts
            ts += 0.0005
            payload = {
                "ts": round(ts, 6), "event": event, "node_name": node, "node_id": node_ids[node],
                "trace_id": trace, "latency_ms": latency, "q_depth_in": rnd.randint(0, 3),
                "q_depth_out": rnd.randint(0, 3), "q_depth_total": 0, "outgoing": 1,
                "queue_maxsize": 64, "attempt": attempt, "trace_inflight": 0,
                "trace_cancelled": False,
                # As PenguiFlow 3.11.2 counts a linear run (docs/RUN_END.md):
                # the input, plus its output once a node succeeded.
                "trace_pending": 2 if event == "node_success" else 1,
            }
            payload.update(extra)
            line = {"level": level, "logger": "penguiflow.core", "message": event,
                    "timestamp": "2026-11-21T23:52:01.415339+00:00", "extra": payload}
            f.write(json.dumps(line) + "\n")
            written += 1
            if written % 1000 == 0:
                f.write("INFO app: heartbeat\n")

        while written < n:
            trace = uuid.UUID(int=rnd.getrandbits(128)).hex
            for node in ("fetch", "triage", "summarize"):
                emit("node_start", node, trace, 0, 0.0, "DEBUG")
                if run % 10 == 3 and node == "triage":
                    emit("node_error", node, trace, 0, 12.5, "ERROR", exception="ValueError('boom')")
                    emit("node_retry", node, trace, 1, None, sleep_s=0.05, exception="ValueError('boom')")
                    emit("node_start", node, trace, 1, 0.0, "DEBUG")
                    emit("node_success", node, trace, 1, 11.0)
                elif run % 50 == 7 and node == "summarize":
                    emit("node_timeout", node, trace, 0, 100.0, "WARNING", exception="TimeoutError()")
                    emit("node_failed", node, trace, 0, 100.0, "ERROR", exception="TimeoutError()",
                         flow_error={"code": "NODE_TIMEOUT", "message": "Node 'summarize' timed out"})
                    break
                else:
                    emit("node_success", node, trace, 0, rnd.uniform(5, 50))
            run += 1


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])

"""A WSGI app for gunicorn with ``--preload``: the master imports it, so the
process-wide pipeline is built before the workers are forked. Each request
runs real flows and writes their FlowEvents to
``$FLOWTEL_TEST_EVENTS_DIR/<pid>.jsonl``; the response is the worker's pid."""

from __future__ import annotations

import asyncio
import json
import os

import flowtel

import flows

flows.quiet_penguiflow_logs()
MIDDLEWARE = flowtel.middleware(flow_name=flows.FLOW_NAME)
EVENTS_DIR = os.environ["FLOWTEL_TEST_EVENTS_DIR"]


def app(environ, start_response):
    capture = asyncio.run(flows.run([MIDDLEWARE], kinds=("ok", "retry")))
    with open(os.path.join(EVENTS_DIR, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
        f.writelines(json.dumps(p, default=str) + "\n" for p in capture.payloads)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

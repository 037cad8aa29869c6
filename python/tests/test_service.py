"""A PenguiFlow service with ``flowtel.middleware()`` (the process-wide
pipeline) runs real flows (success; error, retry, success; timeout, retry,
timeout, failed; a cancellation; a deadline skip; many runs in parallel) and
exits normally; a real rotel-agent must have received, over gRPC and over
HTTP, exactly what the FlowEvents captured by a second middleware promise
(checked by the Rust asserters, ``flowtel-check-run``)."""

from __future__ import annotations

import json

from conftest import HERE, Collector, check_run, run_script


def service(collector: Collector, workdir, *, env: dict[str, str], settings: dict | None = None, runs: int = 20,
            loop: str = "asyncio") -> dict:
    events = workdir / "events.jsonl"
    args = [str(HERE / "flows.py"), "--events", str(events), "--runs", str(runs), "--loop", loop]
    if settings:
        args += ["--settings", json.dumps(settings)]
    out = run_script(args, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "middleware_error" not in out.stderr, out.stderr
    stats = json.loads(out.stdout.strip().splitlines()[-1])["stats"]
    kinds = {json.loads(line)["event"] for line in events.read_text().splitlines()}
    # The flows really produced every case the checks are about.
    assert {"node_retry", "node_timeout", "node_failed", "trace_cancel_start", "node_trace_cancelled",
            "deadline_skip", "node_error"} <= kinds, kinds
    return {"events": events, "stats": stats}


def test_grpc_configured_only_by_the_environment(collector: Collector, workdir) -> None:
    # No settings in code: OTEL_EXPORTER_OTLP_ENDPOINT alone selects OTLP/gRPC.
    r = service(collector, workdir, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc,
        "OTEL_SERVICE_NAME": "penguiflow-py",
    })
    assert r["stats"]["events_unmappable"] == 0 and r["stats"]["events_dropped"] == 0, r["stats"]
    check_run(collector, r["events"], flow_name="flow")
    assert "service.name: Str(penguiflow-py)" in collector.text()


def test_http_settings_in_code_win_over_the_environment(collector: Collector, workdir) -> None:
    dead = f"http://127.0.0.1:{collector.grpc_port + 1 if collector.grpc_port < 65535 else 1}"
    r = service(collector, workdir, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": dead,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_SERVICE_NAME": "from-the-environment",
    }, settings={
        "endpoint": collector.http,
        "protocol": "http/protobuf",
        "service_name": "checkout-py",
        "flow_name": "support-triage",
    })
    assert r["stats"]["events_dropped"] == 0, r["stats"]
    check_run(collector, r["events"])
    text = collector.text()
    assert "service.name: Str(checkout-py)" in text and "from-the-environment" not in text


def test_uvloop(collector: Collector, workdir) -> None:
    r = service(collector, workdir, env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc},
                settings={"flow_name": "support-triage"}, runs=5, loop="uvloop")
    check_run(collector, r["events"])

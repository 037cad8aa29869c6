"""Shared test support: a real collector (rotel-agent) on free loopback
ports, the Rust checker of what it received (``flowtel-check-run``), and
the rule that a missing real part fails the run when ``CI=true`` (and skips
it otherwise)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def missing(what: str) -> None:
    """A real part the tests need is not there: fail under CI, else skip."""
    msg = f"{what} (run python/scripts/test, which installs and builds everything)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def wait_until(done: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``done()`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = done()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def rotel_agent() -> str:
    path = os.environ.get("ROTEL_AGENT")
    if not path:
        try:
            import rotel
        except ImportError:
            missing("rotel (rotel-agent, the real OTLP collector) is not installed")
        path = str(Path(rotel.__file__).parent / "rotel-agent")
    if not os.access(path, os.X_OK):
        missing(f"rotel-agent not found at {path}")
    return path


class Collector:
    """A running rotel-agent with gRPC and HTTP receivers and a detailed debug
    log of traces and metrics on its standard output (the command line of
    ``integration-tests/src/collector.rs``)."""

    def __init__(self, workdir: Path, grpc_port: int | None = None, http_port: int | None = None) -> None:
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.log = workdir / f"rotel-{self.grpc_port}.log"
        out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [
                rotel_agent(),
                "start",
                "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
                "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
                "--exporter", "blackhole",
                "--debug-log", "traces",
                "--debug-log", "metrics",
                "--debug-log-verbosity", "detailed",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"rotel-agent exited at start:\n{self.text()}")
            return listening(self.grpc_port) and listening(self.http_port)

        wait_until(up, 20, "rotel-agent listening")

    @property
    def grpc(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="flowtel-py-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def collector(workdir: Path) -> Iterator[Collector]:
    c = Collector(workdir)
    yield c
    c.stop()


@pytest.fixture(scope="session", autouse=True)
def _real_parts() -> None:
    """The package under test is the installed wheel, not the source tree."""
    try:
        import penguiflow  # noqa: F401
    except ImportError:
        missing("penguiflow is not installed")
    import flowtel

    if Path(flowtel.__file__).resolve().parent == REPO / "python" / "flowtel":
        pytest.fail("flowtel imported from the source tree, not the installed wheel", pytrace=False)


def checker() -> str:
    path = os.environ.get("FLOWTEL_CHECK_RUN") or str(REPO / "target" / "debug" / "flowtel-check-run")
    if not os.access(path, os.X_OK):
        missing(f"flowtel-check-run not built at {path} (cargo build -p flowtel-python-checks)")
    return path


def check_run(
    collector: Collector,
    events: list[dict[str, Any]] | Path | None = None,
    *,
    flow_name: str = "support-triage",
    spans_only: bool = False,
    counters: Sequence[tuple[str, str, float]] = (),
    timeout: float = 20,
) -> str:
    """Check what ``collector`` received against the captured ``events``
    (and the ``(metric, "key=value", total)`` counters) with the Rust
    integration tests' asserters; fail with their verdict."""
    cmd = [checker(), "--log", str(collector.log), "--timeout", str(timeout)]
    if events is not None:
        if isinstance(events, list):
            path = collector.log.with_suffix(f".events-{time.monotonic_ns()}.jsonl")
            path.write_text("".join(json.dumps(e, default=str) + "\n" for e in events))
        else:
            path = events
        cmd += ["--events", str(path), "--flow-name", flow_name] + (["--spans-only"] if spans_only else [])
    for metric, attr, total in counters:
        cmd += ["--counter", metric, attr, str(total)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
    assert out.returncode == 0, f"{out.stdout}{out.stderr}\n--- collector log (tail) ---\n{collector.text()[-4000:]}"
    return out.stdout


def run_script(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a Python script of the tests in a fresh interpreter, with no
    ``OTEL_*`` variable but those in ``env``, from the tests' directory (so
    that ``python -c`` imports the installed flowtel, not the source tree)."""
    full_env = {**clean_otel_env(), **(env or {})}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=HERE
    )


def clean_otel_env() -> dict[str, str]:
    """The environment without any OTEL_* variable (tests set their own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}

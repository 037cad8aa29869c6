"""A pre-fork service: the parent builds the process-wide pipeline and uses
it, then forks children that run flows with the middleware they inherited,
then runs flows again itself. Every process writes the FlowEvents it saw to
``DIR/<pid>.jsonl``.

    python forked.py --mode os-fork|mp-fork --children N --dir DIR

``os-fork`` children call ``flowtel.shutdown()`` before ``os._exit()``;
``mp-fork`` children (``multiprocessing``, fork context) just return, and
the exit hook flowtel registers with multiprocessing delivers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import flowtel

import flows


def run_and_write(mw: flowtel.Middleware, directory: str, kinds: tuple[str, ...]) -> None:
    capture = asyncio.run(flows.run([mw], kinds=kinds))
    with open(os.path.join(directory, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
        for p in capture.payloads:
            f.write(json.dumps(p, default=str) + "\n")


def mp_child(directory: str) -> None:
    run_and_write(flowtel.middleware(), directory, ("ok", "retry", "timeout"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["os-fork", "mp-fork"], required=True)
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()

    flows.quiet_penguiflow_logs()
    mw = flowtel.middleware(flow_name=flows.FLOW_NAME)
    run_and_write(mw, args.dir, ("ok",))  # the pipeline's threads run when the parent forks
    failures = 0
    if args.mode == "os-fork":
        pids = []
        for _ in range(args.children):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    run_and_write(mw, args.dir, ("ok", "retry", "timeout"))
                    flowtel.shutdown(timeout=10)
                except BaseException as e:  # noqa: BLE001 - reported through the exit code
                    print(f"child {os.getpid()}: {e!r}", file=sys.stderr)
                    code = 1
                os._exit(code)
            pids.append(pid)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            failures += os.waitstatus_to_exitcode(status) != 0
    else:
        # Imported after flowtel: its exit hook must still reach the children.
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=mp_child, args=(args.dir,)) for _ in range(args.children)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            failures += p.exitcode != 0
    run_and_write(mw, args.dir, ("ok", "retry"))  # the parent's pipeline still works
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

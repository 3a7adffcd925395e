"""Runs `python -m gateway …` with a sampling thread that notes, every few milliseconds, which
asyncio task the main thread is running, and maps tasks to the worker's stages.

    python bench/stage_sampler.py OUT.json serve --roles worker,scheduler …

Used by `bench/notify.py --stages`. A sampler rather than cProfile: SQLAlchemy's async layer
switches greenlets under the profiler's feet, which makes cProfile's cumulative times
meaningless. Samples count the moments the main thread was busy (not waiting in the event
loop's `select`); `bench/notify.py` turns their shares into CPU per message.
"""

from __future__ import annotations

import asyncio.tasks
import atexit
import json
import runpy
import signal
import sys
import threading
import time
import types
from collections import Counter
from pathlib import Path

INTERVAL = 0.005
# the coroutine a task was started with ▸ its stage
STAGES = {
    "IngestRunner._loop": "ingest",
    "OutboxRelay._loop": "relay",
    "KafkaConsumerLoop._run": "mailer",
    "Mailer._sweep_loop": "mailer",
    "Mailer._send": "mailer",  # a group's sends, side by side
    "Fetcher._proc_fetch_request": "kafka client",
    "Sender._sender_routine": "kafka client",
}


def stage_of(task: object) -> str:
    if task is None:
        return "event loop (I/O callbacks, no task)"
    code = getattr(task.get_coro(), "cr_code", None)  # type: ignore[attr-defined]
    qualname = getattr(code, "co_qualname", "") if code else ""
    return STAGES.get(qualname, f"task {qualname or '?'}")


def idle(code: types.CodeType) -> bool:
    """Waiting for I/O: in asyncio's loop, its selector's Python frame; in uvloop's, whose
    loop is C, nothing above the runner's `run`."""
    if code.co_name in ("select", "poll") and "selectors" in code.co_filename:
        return True
    return code.co_name == "run" and code.co_filename.endswith(("asyncio/runners.py", "uvloop/__init__.py"))


def sample(main_id: int, counts: Counter[str]) -> None:
    current = asyncio.tasks._current_tasks  # loop -> running task, readable from here
    while True:
        time.sleep(INTERVAL)
        frame = sys._current_frames().get(main_id)
        if frame is None:
            return
        if idle(frame.f_code):
            counts["idle"] += 1
            continue
        task = next(iter(current.values()), None) if current else None
        counts[stage_of(task)] += 1


def main() -> None:
    out = Path(sys.argv[1])
    counts: Counter[str] = Counter()
    atexit.register(lambda: out.write_text(json.dumps(counts)))
    # SIGUSR1: start counting afresh (the bench sends it once the worker has started)
    signal.signal(signal.SIGUSR1, lambda *_: counts.clear())
    threading.Thread(target=sample, args=(threading.main_thread().ident, counts), daemon=True).start()
    sys.argv = ["gateway", *sys.argv[2:]]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    runpy.run_module("gateway", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

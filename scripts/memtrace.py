"""Where a stage's memory goes: run a stage script in this process, sample its resident memory
every 0.1 s, and print the highest sample between consecutive log lines or traced calls.

    cd <run folder>
    python <repo>/scripts/memtrace.py --mark ames.workflows.stage2_folds:calibrate_on_folds \\
        -- <repo>/stages/train_ames.py --stage gating --dataset data/processed/dataset.nc ...

``--mark module:function`` logs the entry and exit of ``function`` as seen from ``module`` (the
module whose global name the caller looks up). Each output line reads ``MEM <start s>
<length s> max <GB> | <what began the interval>``; the last line is the peak. The stage's own
logging is kept (INFO). docs/speed.md ("Memory of the gating stage") shows a use.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import runpy
import sys
import threading
import time
from pathlib import Path

from _measure import memory  # this folder's stage runner: resident bytes from /proc

SAMPLES: list[tuple[float, float]] = []
EVENTS: list[tuple[float, str]] = []


def sample_forever() -> None:
    while True:
        SAMPLES.append((time.time(), memory(os.getpid())[0] / 1e9))
        time.sleep(0.1)


class EventLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        EVENTS.append((time.time(), record.getMessage()[:100]))


def trace_calls(spec: str) -> None:
    module_name, name = spec.rsplit(":", 1)
    module = importlib.import_module(module_name)
    function = getattr(module, name)
    short = f"{module_name.rsplit('.', 1)[-1]}.{name}"

    @functools.wraps(function)
    def traced(*args, **kwargs):
        EVENTS.append((time.time(), f">> {short}"))
        try:
            return function(*args, **kwargs)
        finally:
            EVENTS.append((time.time(), f"<< {short}"))

    setattr(module, name, traced)


def report(start: float) -> None:
    previous_t, previous = start, "start"
    for t, event in [*EVENTS, (time.time(), "end")]:
        inside = [gb for s, gb in SAMPLES if previous_t <= s < t]
        if inside:
            print(
                f"MEM {previous_t - start:7.1f} {t - previous_t:6.1f} max {max(inside):.2f} GB"
                f" | {previous}",
                file=sys.stderr,
            )
        previous_t, previous = t, event
    print(f"MEM peak {max(gb for _, gb in SAMPLES):.2f} GB", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mark", action="append", default=[], help="module:function")
    parser.add_argument("script", type=Path)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    sys.path.insert(0, str(args.script.resolve().parent))  # the stage's _src_path
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger().addHandler(EventLog())
    import _src_path  # noqa: F401  (the stage's checkout's src before ames)

    for spec in args.mark:
        trace_calls(spec)
    threading.Thread(target=sample_forever, daemon=True).start()
    sys.argv = [str(args.script), *args.args]
    start = time.time()
    try:
        runpy.run_path(str(args.script), run_name="__main__")
    except SystemExit:
        pass
    finally:
        report(start)


if __name__ == "__main__":
    main()

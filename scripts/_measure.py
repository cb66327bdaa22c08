"""Run one command under a memory guard and write its wall time and peak RSS as JSON.

    python scripts/_measure.py RESULT.json MAX_RSS_GB TIMEOUT_S -- command [args...]

``scripts/scaling.py`` runs every stage through this small process (standard library only),
for two reasons:

* **an exact peak RSS.** Linux's ``ru_maxrss`` of a process that ran ``exec`` includes the
  peak of the memory it was forked from, so a stage started straight from the benchmark
  (torch imported, ~0.4 GB) would report at least that. Started from this process
  (~15 MB), its ``ru_maxrss`` (from ``wait4``) is its own high-water mark.
* **the guard.** Every 0.1 s it reads the command's resident memory (``/proc/<pid>/status``)
  and kills it with SIGKILL once it exceeds MAX_RSS_GB or runs past TIMEOUT_S (0: no limit).
  Only this process reaps the command, so until ``wait4`` has returned it the pid cannot
  belong to another process.

The command's output goes where this process's goes; the exit status is 0 unless this
process itself fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.1
GB = 1e9


def memory(pid: int) -> tuple[int, int]:
    """Resident and peak virtual bytes of a process not yet reaped; 0 once its memory is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)

    def size(key: str) -> int:
        return int(fields.get(key, "0 kB").split()[0]) * 1024

    return size("VmRSS"), size("VmPeak")


def measure(argv: list[str], max_rss_gb: float, timeout_s: float) -> dict[str, object]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv)
    stopped, peak_vm = None, 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        rss, vm = memory(proc.pid)
        peak_vm = max(peak_vm, vm)
        if rss > max_rss_gb * GB:
            stopped = f"over {max_rss_gb:g} GB"
        elif timeout_s and time.perf_counter() - start > timeout_s:
            stopped = f"over {timeout_s:g} s"
        if stopped is not None:
            os.kill(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(POLL_S)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / GB, 3),
        "peak_vm_gb": round(peak_vm / GB, 2),
        "returncode": proc.returncode,
        "stopped": stopped,
    }


def main() -> None:
    result_path, max_rss_gb, timeout_s, separator, *argv = sys.argv[1:]
    if separator != "--" or not argv:
        sys.exit(__doc__.split("\n\n")[1])
    result = measure(argv, float(max_rss_gb), float(timeout_s))
    Path(result_path).write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

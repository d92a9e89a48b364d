"""What the kill-after-POST tests share: finding and SIGKILLing real task processes, reading the emulator.

Processes are found through Linux ``/proc`` (``cmdline`` carries the titles Airflow sets with setproctitle); nothing
here imports Airflow, so the same helpers serve the Airflow 3.3 stack and the Airflow 2.11 scheduler.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from airflow_backup_provider.emulator import Emulator, JobView, RecordedRequest, SeededItem

PROC = pathlib.Path("/proc")
# A poll of a backup's async operation (any of the three endpoints a 202 may name).
OPERATION_POLL = re.compile(r"/(operationsStatus|operationResults|backupOperations)/", re.IGNORECASE)


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    cmdline: str


def processes() -> list[ProcessInfo]:
    """Every live (non-zombie) process of this machine with its parent and command line (setproctitle included)."""
    found = []
    for entry in PROC.glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid ...
            if fields[0] == "Z":
                continue
            raw = (entry / "cmdline").read_bytes()
            found.append(ProcessInfo(int(entry.name), int(fields[1]), raw.replace(b"\0", b" ").decode().strip()))
    return found


def process(pid: int) -> ProcessInfo | None:
    return next((p for p in processes() if p.pid == pid), None)


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1) -> object:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class KillLog:
    """Every SIGKILL the fault tests sent (pid, command line, when), counted in the pytest terminal summary."""

    kills: list[tuple[int, str, datetime]] = field(default_factory=list)
    cycles: int = 0  # kill → retry cycles run to the end (one cycle may SIGKILL several processes at once)

    def sigkill(self, *targets: ProcessInfo) -> datetime:
        """SIGKILL the processes (all at once, as a node loss would), wait until they are gone; returns the time."""
        for target in targets:
            os.kill(target.pid, signal.SIGKILL)
        killed_at = datetime.now(timezone.utc)
        for target in targets:
            self.kills.append((target.pid, target.cmdline, killed_at))
            print(f"\n[faults] SIGKILL pid {target.pid}: {target.cmdline}", flush=True)
        wait_for(
            lambda: all(process(t.pid) is None for t in targets),
            timeout=10,
            what=f"pids {[t.pid for t in targets]} to die",
        )
        return killed_at


KILLS = KillLog()


# ---- the emulator's view -------------------------------------------------------------------------------------------


def backup_posts(emulator: Emulator, item: SeededItem) -> list[RecordedRequest]:
    """The backup trigger POSTs for ``item`` the emulator received (any answer), oldest first."""
    suffix = f"/protecteditems/{item.protected_item_name.lower()}/backup"
    return [r for r in emulator.requests if r.method == "POST" and r.path.lower().endswith(suffix)]


def accepted_backup_post(emulator: Emulator, item: SeededItem) -> RecordedRequest | None:
    return next((r for r in backup_posts(emulator, item) if r.status == 202), None)


def backup_jobs(emulator: Emulator, item: SeededItem) -> list[JobView]:
    """The item's backup jobs in the emulator, oldest first."""
    jobs = [j for j in emulator.jobs if j.operation == "Backup" and j.protected_item_name == item.protected_item_name]
    return sorted(jobs, key=lambda j: j.start_time)


def requests_after(emulator: Emulator, moment: datetime) -> list[RecordedRequest]:
    return [r for r in emulator.requests if r.timestamp > moment]

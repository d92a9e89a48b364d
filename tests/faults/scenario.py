"""One kill-after-POST cycle on a real scheduler, and what must hold afterwards (the same on Airflow 3.3 and 2.11).

1. The item's job duration is set (long: still running at retry time; short: finished by then) and the emulator's
   ``operation_in_progress`` fault holds the backup operation open, so the task knows that Azure accepted its POST
   (202) but not the job id: the window of issue 6 §1 (on real Azure the 202 says ``Retry-After: 60``).
2. The DAG run is triggered; as soon as the emulator has answered the task's backup POST with 202, the task runner
   (and, for a worker death, its supervisor too) is SIGKILLed and the fault cleared.
3. The scheduler notices the dead task and retries it. Afterwards: the run succeeded on the second try, the item has
   exactly ONE backup job, the retry did not POST again, its XCom ``job_id`` is that job and it OWNS it
   (XCom ``job_owned`` true: ``cancel_on_kill`` / ``on_kill`` may cancel it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from airflow_backup_provider.emulator import Emulator, Fault, SeededItem
from tests.e2e.stack import RunObservation, StackError

from .killing import (
    KILLS,
    ProcessInfo,
    accepted_backup_post,
    backup_jobs,
    backup_posts,
    processes,
    requests_after,
    wait_for,
)

TASK_ID = "trigger_backup"
LONG_JOB_SECONDS = 600.0  # wall seconds: the first job still runs when the retry looks
SHORT_JOB_SECONDS = 2.0  # wall seconds: shorter than the DAG's retry_delay, so finished when the retry looks
HELD_POLLS = 100_000  # operation polls answered InProgress: the killed try never learns its job id
RUN_TIMEOUT = 150.0


class FaultStack(Protocol):
    def trigger(self, dag_id: str) -> RunObservation: ...
    def wait_for_run(self, run: RunObservation, timeout: float = ..., interval: float = ...) -> RunObservation: ...
    def task_processes(self, run: RunObservation, task_id: str) -> tuple[ProcessInfo, ProcessInfo] | None: ...
    def try_number(self, run: RunObservation, task_id: str) -> int: ...
    def xcom(self, run: RunObservation, task_id: str, key: str = ...) -> Any: ...
    def task_log(self, run: RunObservation, task_id: str, attempt: int) -> str: ...
    def diagnostics(self, dag_id: str | None = None, lines: int = ...) -> str: ...


@dataclass
class KillCycle:
    """What one cycle saw (printed, and in every assertion message)."""

    dag_id: str
    first_job_running: bool
    worker_death: bool
    run: RunObservation | None = None
    killed: tuple[ProcessInfo, ...] = ()
    killed_at: datetime | None = None
    began: datetime | None = None  # before the DAG run was triggered: the seeded (older) jobs are not this cycle's

    def describe(self) -> str:
        case = "first job still running" if self.first_job_running else "first job already finished"
        kill = "task runner + supervisor (worker death)" if self.worker_death else "task runner"
        return f"{self.dag_id}: SIGKILL {kill} after the accepted POST; {case} at retry time"


def kill_after_post(
    stack: FaultStack,
    emulator: Emulator,
    dag_id: str,
    item: SeededItem,
    *,
    first_job_running: bool,
    worker_death: bool = False,
) -> KillCycle:
    """Run one cycle (steps 1-3 above) and check the outcome; returns what it saw."""
    cycle = KillCycle(dag_id, first_job_running, worker_death)
    scale = emulator.config.time_scale
    seconds = LONG_JOB_SECONDS if first_job_running else SHORT_JOB_SECONDS
    emulator.set_item_behavior(item.protected_item_name, "Completed", duration_seconds=scale * seconds)
    emulator.add_fault(Fault("operation_in_progress", count=1, polls=HELD_POLLS))

    cycle.began = datetime.now(timezone.utc)
    run = cycle.run = stack.trigger(dag_id)
    try:
        wait_for(lambda: accepted_backup_post(emulator, item), timeout=90, what=f"{dag_id}: an accepted backup POST")
        found = wait_for(
            lambda: stack.task_processes(run, TASK_ID),
            timeout=10,
            what=f"{dag_id}: the task's processes among {[p for p in processes() if 'airflow' in p.cmdline]}",
        )
        assert isinstance(found, tuple)
        runner, supervisor = found
        cycle.killed = (runner, supervisor) if worker_death else (runner,)
        cycle.killed_at = KILLS.sigkill(*cycle.killed)
        emulator.clear_faults()  # the retry's own operations (if any) may finish
        # The window was real: the killed try had not learned (nor pushed) the job id.
        assert stack.xcom(run, TASK_ID, "job_id") is None, "the first try pushed a job id before it was killed"
        stack.wait_for_run(run, timeout=RUN_TIMEOUT)
    except (AssertionError, StackError) as error:
        raise AssertionError(f"{cycle.describe()}: {error}\n{stack.diagnostics(dag_id)}") from error
    check_one_owned_job(stack, emulator, item, cycle)
    KILLS.cycles += 1
    print(f"\n[faults] kill cycle {KILLS.cycles} passed: {cycle.describe()}; run {run.run_id}", flush=True)
    return cycle


def check_one_owned_job(stack: FaultStack, emulator: Emulator, item: SeededItem, cycle: KillCycle) -> None:
    assert cycle.run is not None and cycle.killed_at is not None and cycle.began is not None
    run, killed_at, began = cycle.run, cycle.killed_at, cycle.began
    jobs = [j for j in backup_jobs(emulator, item) if j.start_time >= began]
    posts = backup_posts(emulator, item)
    retry_requests = requests_after(emulator, killed_at)
    job_id = stack.xcom(run, TASK_ID, "job_id")
    owned = stack.xcom(run, TASK_ID, "job_owned")
    retry_log = stack.task_log(run, TASK_ID, 2)
    evidence = (
        f"{cycle.describe()}\nrun {run.run_id} ended {run.run_state}; task states seen {run.seen}\n"
        f"backup jobs of {item.protected_item_name} since the run was triggered: "
        f"{[(j.job_id, j.status, j.start_time.isoformat()) for j in jobs]}\n"
        f"backup POSTs (status): {[(p.status, p.timestamp.isoformat()) for p in posts]}\n"
        f"retry XCom job_id={job_id!r} job_owned={owned!r}\n"
        f"killed at {killed_at.isoformat()}; ARM requests since: "
        f"{[(r.method, r.path.rsplit('/', 1)[-1], r.status) for r in retry_requests]}\n"
        f"----- retry log (attempt=2), tail -----\n{chr(10).join(retry_log.splitlines()[-25:])}"
    )

    def expect(condition: object, message: str) -> None:
        if not condition:
            raise AssertionError(f"{message}\n{evidence}\n{stack.diagnostics(run.dag_id)}")

    # The scheduler noticed the dead task and retried it; the retry succeeded.
    expect(run.run_state == "success", f"the DAG run ended {run.run_state}")
    expect(stack.try_number(run, TASK_ID) == 2, f"try_number {stack.try_number(run, TASK_ID)}, expected 2")
    expect(retry_requests, "the retry sent no request to the emulator")
    # The first job is the killed try's, and at retry time it was in the state this case is about.
    expect(jobs and jobs[0].start_time <= killed_at, "no backup job was started by the killed try")
    first = jobs[0]
    if cycle.first_job_running:
        expect(
            first.end_time is None or first.end_time > retry_requests[-1].timestamp,
            f"precondition: job {first.job_id} ended {first.end_time} before the retry's last request",
        )
    else:
        expect(
            first.end_time is not None and first.end_time < retry_requests[0].timestamp,
            f"precondition: job {first.job_id} had not ended ({first.end_time}) when the retry started",
        )
    # Never twice: one job, and the retry found it instead of asking again.
    expect(len(jobs) == 1, f"{len(jobs)} backup jobs of the item, expected exactly 1")
    expect(len(posts) == 1, f"{len(posts)} backup POSTs, expected 1 (the retry must find the job, not POST)")
    # The retry hands on that job, as its own.
    expect(job_id == first.job_id, f"the retry's XCom job_id {job_id!r} is not job {first.job_id}")
    expect(stack.xcom(run, TASK_ID) == first.job_id, "the retry's return_value is not the job id")
    expect(owned is True, f"the retry does not own job {first.job_id} (XCom job_owned={owned!r})")
    expect(first.job_id in retry_log, f"the retry's log never names job {first.job_id}")

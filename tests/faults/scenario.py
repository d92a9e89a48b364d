"""One kill-after-POST cycle on a real scheduler, and what must hold afterwards (the same on Airflow 3.3 and 2.11).

1. The item's job duration is set (long: still running at retry time; short: finished by then) and the window of
   issue 6 §1 — Azure accepted the POST (202), the task does not know the job id yet — is held open, one of two ways:

   - ``"retry_after"``: the 202 says ``Retry-After: 60`` (as real Azure does); the task sleeps before its first
     operation poll and is killed in that sleep. The operation itself completes at its next poll, so a retry that
     kept the operation id (Airflow 3.3's task state store) learns the job from it.
   - ``"held_operation"``: the emulator's ``operation_in_progress`` fault keeps the operation InProgress (without a
     job id) for 100,000 polls; the task is killed after its first poll. A retry can only find the job by searching
     the item's jobs since the earlier try's request.
2. The DAG run is triggered; as soon as the emulator has answered the task's backup POST with 202 (and, when held,
   the first operation poll), the task runner — and, for a worker death, its supervisor with it — is SIGKILLed.
3. The scheduler notices the dead task and retries it. Afterwards: the run succeeded on the second try, the item has
   exactly ONE backup job, the retry did not POST again, its XCom ``job_id`` is that job, it OWNS it (XCom
   ``job_owned`` true: ``cancel_on_kill`` / ``on_kill`` may cancel it) and its log says how it found it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from airflow_backup_provider.emulator import Emulator, Fault, RecordedRequest, SeededItem
from tests.e2e.stack import RunObservation, StackError

from .killing import (
    KILLS,
    OPERATION_POLL,
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
AZURE_RETRY_AFTER = 60  # what real Azure's backup 202 says
Window = Literal["retry_after", "held_operation"]
RUN_TIMEOUT = 150.0


class FaultStack(Protocol):
    has_task_state_store: bool

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
    window: Window
    run: RunObservation | None = None
    killed: tuple[ProcessInfo, ...] = ()
    killed_at: datetime | None = None
    killed_try: int = 0  # the try number of the killed process (1, unless an earlier try failed on its own)
    began: datetime | None = None  # before the DAG run was triggered: the seeded (older) jobs are not this cycle's

    def describe(self) -> str:
        case = "first job still running" if self.first_job_running else "first job already finished"
        kill = "task runner + supervisor (worker death)" if self.worker_death else "task runner"
        return f"{self.dag_id}: SIGKILL {kill} after the accepted POST ({self.window}); {case} at retry time"


def kill_after_post(
    stack: FaultStack,
    emulator: Emulator,
    dag_id: str,
    item: SeededItem,
    *,
    first_job_running: bool,
    window: Window,
    worker_death: bool = False,
) -> KillCycle:
    """Run one cycle (steps 1-3 above) and check the outcome; returns what it saw."""
    cycle = KillCycle(dag_id, first_job_running, worker_death, window)
    scale = emulator.config.time_scale
    seconds = LONG_JOB_SECONDS if first_job_running else SHORT_JOB_SECONDS
    emulator.set_item_behavior(item.protected_item_name, "Completed", duration_seconds=scale * seconds)
    if window == "held_operation":
        emulator.add_fault(Fault("operation_in_progress", count=1, polls=HELD_POLLS))
    else:
        emulator.configure(retry_after=AZURE_RETRY_AFTER)

    cycle.began = datetime.now(timezone.utc)
    run = cycle.run = stack.trigger(dag_id)
    try:
        post = wait_for(
            lambda: accepted_backup_post(emulator, item), timeout=90, what=f"{dag_id}: an accepted backup POST"
        )
        assert isinstance(post, RecordedRequest)
        if window == "held_operation":
            wait_for(
                lambda: any(OPERATION_POLL.search(r.path) for r in requests_after(emulator, post.timestamp)),
                timeout=30,
                what=f"{dag_id}: the first operation poll",
            )
            assert not emulator.faults, f"the operation_in_progress fault was not applied: {emulator.faults}"
        found = wait_for(
            lambda: stack.task_processes(run, TASK_ID),
            timeout=10,
            what=f"{dag_id}: the task's processes among {[p for p in processes() if 'airflow' in p.cmdline]}",
        )
        assert isinstance(found, tuple)
        runner, supervisor = found
        cycle.killed = (runner, supervisor) if worker_death else (runner,)
        cycle.killed_try = stack.try_number(run, TASK_ID)
        cycle.killed_at = KILLS.sigkill(*cycle.killed)
        emulator.configure(retry_after=1)  # a retry's own POST (if any) need not sleep a minute
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
    retry_try = cycle.killed_try + 1
    retry_log = stack.task_log(run, TASK_ID, retry_try)
    evidence = (
        f"{cycle.describe()}\nrun {run.run_id} ended {run.run_state}; task states seen {run.seen}\n"
        f"backup jobs of {item.protected_item_name} since the run was triggered: "
        f"{[(j.job_id, j.status, j.start_time.isoformat()) for j in jobs]}\n"
        f"backup POSTs (status): {[(p.status, p.timestamp.isoformat()) for p in posts]}\n"
        f"retry XCom job_id={job_id!r} job_owned={owned!r}\n"
        f"killed at {killed_at.isoformat()}; ARM requests since: "
        f"{[(r.method, r.path.rsplit('/', 1)[-1], r.status) for r in retry_requests]}\n"
        f"----- retry log (attempt={retry_try}), tail -----\n{chr(10).join(retry_log.splitlines()[-25:])}"
    )

    def expect(condition: object, message: str) -> None:
        if not condition:
            raise AssertionError(f"{message}\n{evidence}\n{stack.diagnostics(run.dag_id)}")

    # The scheduler noticed the dead task and retried it; the retry succeeded.
    expect(run.run_state == "success", f"the DAG run ended {run.run_state}")
    final_try = stack.try_number(run, TASK_ID)
    expect(final_try == retry_try, f"try_number {final_try}; expected the try after the killed one ({retry_try})")
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
    # How it found the job: the operation id kept in the task state store, else a search of the item's jobs.
    if cycle.window == "retry_after" and stack.has_task_state_store:
        expect(
            "The earlier try's operation" in retry_log and f"started job {first.job_id}" in retry_log,
            f"the retry's log lacks \"The earlier try's operation ... started job {first.job_id}\"",
        )
    else:
        line = f"Found job {first.job_id} ({'InProgress' if cycle.first_job_running else 'Completed'})"
        expect(
            f"{line} of the earlier try's request; attaching to it." in retry_log,
            f"the retry's log lacks {line!r}",
        )

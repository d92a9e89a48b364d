"""The provider on the production shape: PostgreSQL, CeleryExecutor (2 workers, Redis broker), 2 triggerers.

One test, one stack (``tests/e2e/prod_stack.py``), ten concurrent DAG runs (``tests/e2e/dags/prod_shape.py``), each
backing up a different VM of the emulator: five wait with the reschedule sensor, five in a triggerer. Two real faults:

1. Every backup operation is held ``InProgress`` (emulator fault ``operation_in_progress``), so the trigger tasks sit
   between their POST and the job id. Once the emulator has recorded the POSTs, the Celery worker running most of
   those tasks is SIGKILLed with its whole process tree. The scheduler fails its tasks when their heartbeats time out
   (``[scheduler] task_instance_heartbeat_timeout`` 20 s) and the retries run on the surviving worker.
2. Once deferrable sensors wait in a triggerer, the triggerer holding most triggers is SIGKILLed; the surviving one
   takes the triggers over when the dead one's heartbeat is older than ``[triggerer]
   triggerer_health_check_threshold``.

Asserted: every run succeeds; the emulator ran exactly one backup job per item (the retries attached to the backup
the killed try had started instead of starting another); the triggers of the killed triggerer were resumed by the
surviving one (aiohttp GETs of their jobs after the kill; where the reassigned trigger row is seen, it names the
survivor); nothing of the stack runs afterwards.
Wall times and counts are printed (``-s`` or the CI log), never asserted.
"""

from __future__ import annotations

import collections
import importlib.metadata
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from airflow_backup_provider.emulator import VAULT_NAME, Emulator, Fault, JobView, SeededItem

from .prod_stack import TRIGGERERS, WORKERS, ProductionStack, StackError
from .stack import RunObservation

pytestmark = [pytest.mark.e2e, pytest.mark.airflow3_only]

if int(importlib.metadata.version("apache-airflow").split(".")[0]) < 3:
    pytest.skip("the production-shape test needs Airflow 3", allow_module_level=True)

DAGS = pathlib.Path(__file__).parent / "dags"
RESCHEDULE_DAG = "prod_shape_reschedule"
DEFERRABLE_DAG = "prod_shape_deferrable"
RUNS_PER_DAG = 5
OPERATION_POLLS = 6  # the hook polls every 5 s: ~30 s between each POST and its job id
JOB_WALL_SECONDS = 80  # outlives the worker kill + heartbeat timeout + retry: the retry finds it running
HEARTBEAT_TIMEOUT = 20
TRIGGERER_HEALTH_THRESHOLD = 15
RUN_TIMEOUT = 240.0


_RUNS: list[RunObservation] = []  # for the failure message


def report(message: str) -> None:
    print(f"\n[prod-shape] {message}", flush=True)


def protect_vms(emulator: Emulator, count: int) -> list[SeededItem]:
    """Protect ``count`` more VMs in the emulator's seeded vault (``vm-prod-01``...), one backup each in the test."""
    return [emulator.add_item(VAULT_NAME, "VM", f"vm-prod-{index:02d}") for index in range(1, count + 1)]


@pytest.fixture
def stack_root() -> Iterator[pathlib.Path]:
    # Not under pytest's tmp_path: its parents are private to root, and PostgreSQL runs as the postgres user.
    root = pathlib.Path(tempfile.mkdtemp(prefix="airflow-prod-shape-"))
    root.chmod(0o755)
    yield root
    if not os.environ.get("KEEP_PROD_STACK"):
        shutil.rmtree(root, ignore_errors=True)


def backup_posts(emulator: Emulator, item: SeededItem) -> list[float]:
    """Times (epoch) of the backup POSTs the emulator recorded for ``item``."""
    suffix = f"/protecteditems/{item.protected_item_name.lower()}/backup"
    return [
        r.timestamp.timestamp() for r in emulator.requests if r.method == "POST" and r.path.lower().endswith(suffix)
    ]


def running_tries(stack: ProductionStack, task_id: str) -> list[tuple[str, str, str]]:
    """``(dag_id, run_id, hostname)`` of the running tries of ``task_id`` (hostname = the worker's node name)."""
    rows = stack.query(
        "SELECT dag_id, run_id, hostname FROM task_instance WHERE task_id = %s AND state = 'running'", (task_id,)
    )
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def assigned_triggers(stack: ProductionStack) -> dict[int, tuple[str, str]]:
    """Trigger id -> (run id, node name of the triggerer holding it) for deferred tasks."""
    rows = stack.query(
        'SELECT t.id, ti.run_id, j.hostname FROM "trigger" t JOIN task_instance ti ON ti.trigger_id = t.id '
        "JOIN job j ON j.id = t.triggerer_id WHERE ti.state = 'deferred'"
    )
    return {int(a): (str(b), str(c)) for a, b, c in rows}


def has_job_id(stack: ProductionStack, dag_id: str, run_id: str) -> bool:
    rows = stack.query(
        "SELECT 1 FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = 'trigger_backup' AND key = 'job_id'",
        (dag_id, run_id),
    )
    return bool(rows)


def test_concurrent_backups_survive_a_killed_worker_and_a_killed_triggerer(
    azure_backup_emulator: Emulator, stack_root: pathlib.Path
) -> None:
    emulator = azure_backup_emulator
    emulator.configure(retry_after=0)
    items = protect_vms(emulator, 2 * RUNS_PER_DAG)
    scale = emulator.config.time_scale
    for item in items:
        emulator.set_item_behavior(item.protected_item_name, "Completed", duration_seconds=scale * JOB_WALL_SECONDS)

    stack = ProductionStack(
        root=stack_root,
        client_env=emulator.client_env(),
        dags_folder=DAGS,
        worker_concurrency=RUNS_PER_DAG,  # both workers together can run every trigger task at once
        extra_env={
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_THRESHOLD),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "16",
            # Parse the DAG file once: re-parsing it every few seconds costs CPU the ten runs need.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        },
    )
    test_started = time.monotonic()
    try:
        stack.start(dag_ids=(RESCHEDULE_DAG, DEFERRABLE_DAG))
        t = stack.timings
        report(
            f"stack healthy in {t['healthy']:.1f} s (servers {t['servers']:.1f} s, "
            f"db migrate {t['db migrate']:.1f} s), DAGs ready at {t['ready']:.1f} s; root {stack_root}"
        )
        _exercise(stack, emulator, items)
    except StackError as error:
        states = {run.run_id: (run.dag_id, run.seen) for run in _RUNS}
        raise StackError(f"{error}\nruns seen: {states}") from None
    finally:
        stopping = time.monotonic()
        stack.stop(grace=5)
        report(
            f"stack stopped in {time.monotonic() - stopping:.1f} s; test wall {time.monotonic() - test_started:.1f} s"
        )
    left = stack.running_members()
    assert not left, f"processes of the stack still running after stop(): {left}"


def _exercise(stack: ProductionStack, emulator: Emulator, items: list[SeededItem]) -> None:
    emulator.add_fault(Fault("operation_in_progress", count=len(items), polls=OPERATION_POLLS))
    runs: dict[str, tuple[RunObservation, SeededItem]] = {}
    triggered_at = datetime.now(timezone.utc)
    for index, item in enumerate(items):
        dag_id = RESCHEDULE_DAG if index % 2 == 0 else DEFERRABLE_DAG
        conf = {"container_name": item.container_name, "protected_item_name": item.protected_item_name}
        run = stack.trigger(dag_id, conf)
        runs[run.run_id] = (run, item)
        _RUNS.append(run)
    started = time.monotonic()

    def diagnostics() -> str:
        return "\n".join(f"{r.dag_id} {r.run_id}: {r.seen}" for r, _ in runs.values()) + "\n" + stack.diagnostics()

    # ---- 1. SIGKILL a worker while its trigger tasks are between POST and job id ---------------------------------
    def posts_recorded() -> bool:
        return all(backup_posts(emulator, item) for item in items)

    stack.wait_until(posts_recorded, timeout=90, what="the trigger tasks to POST their backups", interval=0.25)
    tries = running_tries(stack, "trigger_backup")
    per_worker = collections.Counter(host for _, _, host in tries)
    victim = max(WORKERS, key=lambda w: per_worker.get(w, 0))
    killed = [(dag_id, run_id) for dag_id, run_id, host in tries if host == victim]
    assert killed, f"no trigger task running on either worker: {tries}"
    for dag_id, run_id in killed:
        item = runs[run_id][1]
        assert backup_posts(emulator, item), f"{run_id}: killed before its POST"
        assert not has_job_id(stack, dag_id, run_id), f"{run_id}: job id already known, not between POST and job id"
    pids = stack.kill_component(victim)
    worker_killed_at = time.time()
    first_posts = sorted(min(backup_posts(emulator, item)) for item in items)
    report(
        f"t+{time.monotonic() - started:.1f} s: SIGKILLed {victim} ({len(pids)} processes) holding "
        f"{len(killed)} trigger tasks between POST and job id; tries per worker {dict(per_worker)}; the POSTs "
        f"spread over {first_posts[-1] - first_posts[0]:.1f} s, the last {worker_killed_at - first_posts[-1]:.1f} s "
        "before the kill"
    )
    survivor_worker = next(w for w in WORKERS if w != victim)

    # ---- 2. SIGKILL a triggerer while triggers are deferred -------------------------------------------------------
    deferrable_runs = {run_id for run_id, (run, _) in runs.items() if run.dag_id == DEFERRABLE_DAG}
    killed_runs = {run_id for _, run_id in killed}
    expected_deferred = deferrable_runs - killed_runs  # the killed ones defer later, after their retry

    def deferred_in_a_triggerer() -> bool:
        for run, _ in runs.values():
            stack.observe(run)
        held = {run_id for run_id, _ in assigned_triggers(stack).values()}
        return held >= expected_deferred

    stack.wait_until(
        deferred_in_a_triggerer,
        timeout=120,
        what="the deferrable sensors to wait in a triggerer",
        interval=0.25,
        expected_dead=frozenset({victim}),
    )
    held = assigned_triggers(stack)
    per_triggerer = collections.Counter(host for _, host in held.values())
    doomed = max(TRIGGERERS, key=lambda name: per_triggerer.get(name, 0))
    doomed_triggers = {trigger_id: run_id for trigger_id, (run_id, host) in held.items() if host == doomed}
    pids = stack.kill_component(doomed)
    triggerer_killed_at = time.time()
    survivor_triggerer = next(name for name in TRIGGERERS if name != doomed)
    report(
        f"t+{time.monotonic() - started:.1f} s: SIGKILLed {doomed} ({len(pids)} processes) holding "
        f"{len(doomed_triggers)} triggers; triggers per triggerer {dict(per_triggerer)}"
    )
    assert doomed_triggers, f"no trigger assigned to a triggerer: {held}"

    # ---- every run to its end, watching who holds the doomed triggers ---------------------------------------------
    dead = frozenset({victim, doomed})
    taken_over: dict[int, str] = {}

    def all_done() -> bool:
        for trigger_id, (_, host) in assigned_triggers(stack).items():
            if trigger_id in doomed_triggers and host != doomed:
                taken_over[trigger_id] = host
        for run, _ in runs.values():
            if run.run_state not in ("success", "failed"):
                stack.observe(run)
        return all(run.run_state in ("success", "failed") for run, _ in runs.values())

    try:
        stack.wait_until(all_done, timeout=RUN_TIMEOUT, what="every DAG run to end", expected_dead=dead)
    except StackError as error:
        raise StackError(f"{error}\n{diagnostics()}") from None
    report(f"t+{time.monotonic() - started:.1f} s: all {len(runs)} runs ended")

    # ---- assertions ------------------------------------------------------------------------------------------------
    failed = {run.run_id: run.seen for run, _ in runs.values() if run.run_state != "success"}
    assert not failed, f"runs not successful: {failed}\n{diagnostics()}"

    new_backups = backups_since(emulator, triggered_at)
    backups = collections.Counter(job.protected_item_name for job in new_backups)
    posts = {item.friendly_name: len(backup_posts(emulator, item)) for item in items}
    report(f"backup POSTs per item: {posts}")
    jobs_per_item = {item.friendly_name: backups.get(item.protected_item_name, 0) for item in items}
    report(f"backup jobs per item: {jobs_per_item}")
    assert all(count == 1 for count in jobs_per_item.values()), f"backup jobs per item: {jobs_per_item}"

    for run, item in runs.values():
        job_id = stack_xcom(stack, run, "trigger_backup", "job_id")
        [job] = [j for j in new_backups if j.protected_item_name == item.protected_item_name]
        assert job_id == job.job_id and job.status == "Completed", (run.run_id, job_id, job)

    retried = dict(
        stack.query("SELECT run_id, try_number FROM task_instance WHERE task_id = 'trigger_backup' AND try_number > 1")
    )
    report(f"trigger_backup retried in {len(retried)} runs: {sorted(retried.values())}")
    assert killed_runs <= set(retried), f"killed tries {sorted(killed_runs)} not retried: {retried}"
    hosts = dict(
        stack.query("SELECT run_id, hostname FROM task_instance WHERE task_id = 'trigger_backup'")  # the last try
    )
    assert all(hosts[run_id] == survivor_worker for run_id in killed_runs), hosts

    # The surviving triggerer took the doomed triggers over and polled their jobs (aiohttp) after the kill: only a
    # triggerer polls with aiohttp, and the other one was dead. Seeing the trigger row reassigned is a race with the
    # trigger firing, so it is reported, and checked only where seen.
    assert set(taken_over.values()) <= {survivor_triggerer}, taken_over
    for run_id in doomed_triggers.values():
        run, item = runs[run_id]
        job_id = stack_xcom(stack, run, "trigger_backup", "job_id")
        gets = [
            r
            for r in emulator.requests
            if r.method == "GET"
            and r.path.endswith(f"/backupJobs/{job_id}")
            and r.timestamp.timestamp() > triggerer_killed_at
            and "aiohttp/" in next((v for k, v in r.headers.items() if k.lower() == "user-agent"), "")
        ]
        assert gets, f"no aiohttp GET of job {job_id} ({run_id}) after {doomed} was killed"
    report(
        f"{len(doomed_triggers)} triggers resumed by {survivor_triggerer} (seen reassigned: {len(taken_over)}); "
        f"worker kill at {worker_killed_at:.0f}, "
        f"triggerer kill at {triggerer_killed_at:.0f}; wall per run: "
        f"{sorted(round(run.wall_seconds or 0) for run, _ in runs.values())}"
    )


def backups_since(emulator: Emulator, since: datetime) -> list[JobView]:
    """Backup jobs the emulator started at or after ``since`` (not the items' seeded history)."""
    return [
        job for job in emulator.jobs if job.operation == "Backup" and job.start_time >= since - timedelta(seconds=1)
    ]


def stack_xcom(stack: ProductionStack, run: RunObservation, task_id: str, key: str) -> object:
    rows = stack.query(
        "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s AND key = %s AND map_index = -1",
        (run.dag_id, run.run_id, task_id, key),
    )
    return rows[0][0] if rows else None

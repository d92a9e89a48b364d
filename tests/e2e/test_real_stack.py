"""The example DAGs on a real Airflow 3 stack: api-server, scheduler, dag-processor, triggerer, LocalExecutor, SQLite.

One stack (own ``AIRFLOW_HOME`` in a temp dir, free ports) serves every test of this module; the Airflow processes
reach the pytest process's emulator over HTTPS. Each test triggers one DAG run through the REST API and follows it in
the metadata DB. Wall times (stack start-up, trigger → run success) are printed: see them with ``-s`` or in CI logs.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import time
from collections.abc import Iterator

import pytest

from airflow_backup_provider.emulator import VM_ITEM, Emulator

from .stack import AirflowStack, RunObservation, StackError

pytestmark = [pytest.mark.e2e, pytest.mark.airflow3_only]

if int(importlib.metadata.version("apache-airflow").split(".")[0]) < 3:
    pytest.skip("the real-stack tests need Airflow 3", allow_module_level=True)

DAG_ID = "azure_backup_verify_notify"
DEFERRABLE_DAG_ID = "azure_backup_verify_notify_deferrable"
TASKS = ("trigger_backup", "wait_for_backup", "verify", "notify")
POKE_INTERVAL = 5  # >= 5 s: apache/airflow #71172 races at 1 s on a real scheduler
BACKUP_WALL_SECONDS = 12  # long enough for several pokes (and for the deferrable sensor to defer)
RUN_TIMEOUT = 180.0


def report(message: str) -> None:
    print(f"\n[e2e] {message}", flush=True)  # own line, also after pytest's progress dots


@pytest.fixture(scope="module")
def stack(azure_backup_emulator_session: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home: pathlib.Path = tmp_path_factory.mktemp("airflow-e2e-home")
    airflow_stack = AirflowStack(
        home=home, client_env=azure_backup_emulator_session.client_env(), poke_interval=POKE_INTERVAL
    )
    try:
        airflow_stack.start(dag_ids=(DAG_ID, DEFERRABLE_DAG_ID))
        report(
            "stack up in {ready:.1f} s (db migrate {migrate:.1f} s, healthy at {healthy:.1f} s); home {home}".format(
                ready=airflow_stack.timings["ready"],
                migrate=airflow_stack.timings["db migrate"],
                healthy=airflow_stack.timings["healthy"],
                home=home,
            )
        )
        yield airflow_stack
    finally:
        stopping = time.monotonic()
        airflow_stack.stop()
        report(f"stack stopped in {time.monotonic() - stopping:.1f} s")


@pytest.fixture
def e2e_emulator(azure_backup_emulator: Emulator) -> Emulator:
    """The emulator reset to its seed; the VM's backups take BACKUP_WALL_SECONDS (wall clock).

    Backup operations finish at their first poll (``Retry-After: 0``, no InProgress answer): following an operation is
    covered by the hook and operator tests; here it would only add the hook's 5 s operation poll interval to each run.
    """
    azure_backup_emulator.configure(retry_after=0, operation_polls_in_progress=0)
    scale = azure_backup_emulator.config.time_scale
    azure_backup_emulator.set_item_behavior(
        VM_ITEM.protected_item_name, "Completed", duration_seconds=scale * BACKUP_WALL_SECONDS
    )
    return azure_backup_emulator


def expect(stack: AirflowStack, run: RunObservation, condition: object, message: str) -> None:
    """Like ``assert``, with the tails of the component logs and of the run's task logs in the message."""
    if not condition:
        raise StackError(f"{message}\nrun {run.run_id}: tasks seen {run.seen}\n{stack.diagnostics(run.dag_id)}")


def run_to_completion(stack: AirflowStack, dag_id: str) -> RunObservation:
    run = stack.trigger(dag_id)
    stack.wait_for_run(run, timeout=RUN_TIMEOUT)
    report(f"{dag_id}: trigger -> {run.run_state} in {run.wall_seconds:.1f} s; task states seen: {run.seen}")
    return run


def assert_run_succeeded(stack: AirflowStack, run: RunObservation, emulator: Emulator) -> str:
    """All four tasks succeeded; returns the job id the operator pushed, which the emulator ran to Completed."""
    expect(stack, run, run.run_state == "success", f"DAG run ended {run.run_state}")
    expect(stack, run, run.task_states == dict.fromkeys(TASKS, "success"), f"task states {run.task_states}")
    job_id = stack.xcom(run, "trigger_backup", "job_id")
    assert isinstance(job_id, str) and job_id, f"XCom trigger_backup.job_id: {job_id!r}"
    assert stack.xcom(run, "trigger_backup") == job_id
    ran = {job.job_id: job for job in emulator.jobs}
    assert job_id in ran, f"job {job_id} not among the emulator's jobs {sorted(ran)}"
    assert ran[job_id].status == "Completed"
    assert ran[job_id].protected_item_name == VM_ITEM.protected_item_name
    summary = stack.xcom(run, "wait_for_backup")
    assert summary["job_id"] == job_id and summary["status"] == "Completed", summary
    return job_id


def test_reschedule_sensor_pokes_until_the_backup_completes(stack: AirflowStack, e2e_emulator: Emulator) -> None:
    run = run_to_completion(stack, DAG_ID)
    job_id = assert_run_succeeded(stack, run, e2e_emulator)

    wait_states = run.seen.get("wait_for_backup", [])
    expect(stack, run, "up_for_reschedule" in wait_states, f"wait_for_backup never up_for_reschedule: {wait_states}")
    reschedules = stack.task_reschedules(run, "wait_for_backup")
    expect(stack, run, reschedules >= 1, "no task_reschedule rows for wait_for_backup")
    # Every poke is one GET of the job from a worker (requests); the first pokes found it still InProgress.
    job_gets = [r for r in e2e_emulator.requests if r.method == "GET" and r.path.endswith(f"/backupJobs/{job_id}")]
    assert len(job_gets) >= reschedules + 1, f"{len(job_gets)} job GETs for {reschedules} reschedules"
    report(f"{DAG_ID}: {reschedules} task_reschedule rows, {len(job_gets)} job GETs")


def test_deferrable_sensor_waits_in_the_triggerer(stack: AirflowStack, e2e_emulator: Emulator) -> None:
    run = run_to_completion(stack, DEFERRABLE_DAG_ID)
    job_id = assert_run_succeeded(stack, run, e2e_emulator)

    wait_states = run.seen.get("wait_for_backup", [])
    expect(stack, run, "deferred" in wait_states, f"wait_for_backup never seen deferred: {wait_states}")
    job_gets = [r for r in e2e_emulator.requests if r.method == "GET" and r.path.endswith(f"/backupJobs/{job_id}")]
    agents = [next((v for k, v in r.headers.items() if k.lower() == "user-agent"), "") for r in job_gets]
    expect(stack, run, any("aiohttp/" in a for a in agents), f"no aiohttp GET of job {job_id}; User-Agents: {agents}")
    trigger_class = "airflow_backup_provider.triggers.backup.BackupJobTrigger"
    expect(stack, run, run.triggers.get("wait_for_backup") == {trigger_class}, f"triggers seen: {run.triggers}")
    # The triggerer writes each trigger's log next to the task's: attempt=N.log.trigger.<trigger id>.log
    trigger_logs = sorted(stack.task_log_dir(run, "wait_for_backup").glob("attempt=*.log.trigger.*.log"))
    trigger_log = "\n".join(path.read_text(errors="replace") for path in trigger_logs)
    for expected in (f"{run.run_id}/wait_for_backup", "starting", job_id, "Trigger fired event", "'success'"):
        expect(stack, run, expected in trigger_log, f"trigger log {[p.name for p in trigger_logs]} lacks {expected!r}")
    report(f"{DEFERRABLE_DAG_ID}: {sum('aiohttp/' in a for a in agents)} of {len(agents)} job GETs from aiohttp")

"""``dag.test()`` runs of every example DAG against the emulator: outcomes, faults, the deferrable variant."""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Any

import pytest

from airflow_backup_provider.emulator import VM_ITEM, Emulator, Fault
from airflow_backup_provider.hooks.backup import AzureBackupHook

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = sorted((REPO / "example_dags").glob("*.py"))


def load_module(path: pathlib.Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(dag: Any, **run_conf: Any) -> tuple[Any, dict[str, Any]]:
    dag_run = dag.test(run_conf=run_conf or None)
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    return dag_run, tis


def xcom(ti: Any, key: str = "return_value") -> Any:
    return ti.xcom_pull(task_ids=ti.task_id, key=key)


@pytest.fixture(scope="module")
def verify_notify() -> Any:
    return load_module(REPO / "example_dags" / "azure_backup_verify_notify.py")


def test_every_example_dag_file_imports_cleanly() -> None:
    assert EXAMPLE_DAGS
    for path in EXAMPLE_DAGS:
        module = load_module(path)
        dags = [v for v in vars(module).values() if type(v).__name__ == "DAG"]
        assert dags, f"{path.name} defines no DAG"


def assert_success(dag_run: Any, tis: dict[str, Any], emulator: Emulator, status: str = "Completed") -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    assert dag_run.state == DagRunState.SUCCESS, {t: ti.state for t, ti in tis.items()}
    assert all(ti.state == TaskInstanceState.SUCCESS for ti in tis.values())
    job_id = xcom(tis["trigger_backup"], "job_id")
    assert job_id == xcom(tis["trigger_backup"])
    summary = xcom(tis["wait_for_backup"])
    assert summary["job_id"] == job_id and summary["status"] == status
    assert emulator.job(job_id).status == status
    verification = xcom(tis["verify"])
    assert verification["ok"] and verification["job_id"] == job_id and verification["status"] == status
    assert [c["name"] for c in verification["checks"]] == [
        "job_succeeded",
        "recovery_point_exists",
        "item_healthy",
        "recovery_point_recent",
    ]
    message = xcom(tis["notify"])
    assert message["ok"] and "vm-app-01 passed" in message["title"]
    assert ["Job", job_id] in message["facts"] and ["Job status", status] in message["facts"]
    assert ["Recovery point", verification["recovery_point_id"]] in message["facts"]
    assert_job_link(tis["trigger_backup"], job_id)


def assert_job_link(ti: Any, job_id: str) -> None:
    """The "Azure Backup job" extra link resolves to the job's portal URL."""
    import importlib.metadata

    from airflow_backup_provider.links.backup import AzureBackupJobLink

    url = xcom(ti, "job_url")
    assert url.startswith("https://portal.azure.com/#@") and url.endswith(f"/backupJobs/{job_id}/overview")
    if importlib.metadata.version("apache-airflow") >= "3":
        # Airflow 3 evaluates get_link() on the worker at task end and stores the result for the UI.
        assert xcom(ti, "_link_AzureBackupJobLink") == url
    else:
        assert AzureBackupJobLink().get_link(ti.task, ti_key=ti.key) == url


@pytest.mark.usefixtures("airflow_db")
class TestVerifyNotify:
    @pytest.fixture(autouse=True)
    def _operations_finish_at_first_poll(self, emulator: Emulator) -> None:
        # The hooks' tests cover InProgress operations; here it would only add the 5 s poll interval to every run.
        emulator.configure(operation_polls_in_progress=0)

    def test_success(self, verify_notify: Any, emulator: Emulator) -> None:
        dag_run, tis = run(verify_notify.azure_backup_verify_notify)
        assert_success(dag_run, tis, emulator)

    def test_completed_with_warnings_still_succeeds(self, verify_notify: Any, emulator: Emulator) -> None:
        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="CompletedWithWarnings", duration_seconds=600)
        dag_run, tis = run(verify_notify.azure_backup_verify_notify)
        assert_success(dag_run, tis, emulator, status="CompletedWithWarnings")

    def test_failed_backup_fails_the_sensor_with_the_error_code(
        self, verify_notify: Any, emulator: Emulator, task_logs: Any
    ) -> None:
        from airflow.utils.state import DagRunState, TaskInstanceState

        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=600)
        dag_run, tis = run(verify_notify.azure_backup_verify_notify)
        assert dag_run.state == DagRunState.FAILED
        assert tis["trigger_backup"].state == TaskInstanceState.SUCCESS
        assert tis["wait_for_backup"].state == TaskInstanceState.FAILED
        job_id = xcom(tis["trigger_backup"], "job_id")
        job = emulator.job(job_id)
        assert job.status == "Failed"
        logs = task_logs()
        assert f"Azure Backup job {job_id}" in logs and "ended Failed; error codes: " in logs
        # The failure notifier ran and named the job (the sensor leaves no report).
        assert f"Azure Backup FAILED: job {job_id} failed" in logs

    def test_failed_verification_notifies_every_failed_check(
        self, verify_notify: Any, emulator: Emulator, task_logs: Any
    ) -> None:
        from airflow.utils.state import DagRunState, TaskInstanceState

        # The backup completes, then its recovery points are gone before verify runs.
        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=600)

        def forget_backups(*_: Any, **__: Any) -> None:  # no public emulator call for it: edit the in-process state
            with emulator.app.vault.lock:
                item = emulator.app.vault.item_by_name(VM_ITEM.protected_item_name)
                item.recovery_points.clear()

        verify_notify.azure_backup_verify_notify.get_task("wait_for_backup").post_execute = forget_backups
        try:
            dag_run, tis = run(verify_notify.azure_backup_verify_notify)
        finally:
            del verify_notify.azure_backup_verify_notify.get_task("wait_for_backup").post_execute
        assert dag_run.state == DagRunState.FAILED
        assert tis["verify"].state == TaskInstanceState.FAILED
        report = xcom(tis["verify"], "verification")
        assert {c["name"]: c["ok"] for c in report["checks"]} == {
            "job_succeeded": True,
            "recovery_point_exists": False,
            "item_healthy": True,
            "recovery_point_recent": False,
        }
        logs = task_logs()
        assert "Azure Backup FAILED: vm-app-01 FAILED (2 of 4 checks)" in logs
        assert "FAIL recovery_point_exists: no recovery point of vm-app-01" in logs

    @pytest.mark.parametrize(
        "fault",
        [
            Fault(kind="throttle", count=3, retry_after=1),
            Fault(kind="unavailable", method="GET", count=3, retry_after=0),
            Fault(kind="reset", method="GET", count=2),
            Fault(kind="token_expiry", method="GET", path_regex="/backupJobs/"),
            Fault(kind="job_not_found", count=2),
            Fault(kind="operation_in_progress", polls=1),
        ],
        ids=lambda f: f.kind,
    )
    def test_faults_are_survived(self, verify_notify: Any, emulator: Emulator, fault: Fault) -> None:
        emulator.add_fault(fault)
        dag_run, tis = run(verify_notify.azure_backup_verify_notify)
        assert_success(dag_run, tis, emulator)
        statuses = [r.status for r in emulator.requests if "/subscriptions/" in r.path.lower()]
        assert {429, 503, 0, 401, 404} & set(statuses) or fault.kind == "operation_in_progress"

    def test_deferrable_variant(self, verify_notify: Any, emulator: Emulator) -> None:
        # Long enough (10 s) that the sensor's first check sees InProgress and defers to the trigger.
        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=6000)
        dag_run, tis = run(verify_notify.azure_backup_verify_notify_deferrable)
        assert_success(dag_run, tis, emulator)
        job_id = xcom(tis["trigger_backup"], "job_id")
        polls = [r for r in emulator.requests if r.method == "GET" and r.path.endswith(f"/backupJobs/{job_id}")]
        agents = [r.headers.get("User-Agent", r.headers.get("user-agent", "")) for r in polls]
        assert any("aiohttp/" in a for a in agents), agents  # the trigger (async hook) did the waiting
        assert "requests/" in agents[0]  # after one cheap synchronous check


@pytest.fixture
def nightly_check() -> Any:
    # Fresh per test: dag.test() renders templated fields (params) into the task objects in place.
    return load_module(REPO / "example_dags" / "azure_backup_nightly_check.py")


@pytest.mark.usefixtures("airflow_db")
class TestNightlyCheck:
    def test_healthy_vault_passes_without_notifying(
        self, nightly_check: Any, emulator: Emulator, task_logs: Any
    ) -> None:
        from airflow.utils.state import DagRunState

        dag = nightly_check.dag
        assert "0 6 * * *" in (getattr(dag, "schedule", None), getattr(dag, "schedule_interval", None))
        dag_run, tis = run(nightly_check.dag)
        assert dag_run.state == DagRunState.SUCCESS
        report = xcom(tis["check"])
        assert report["items"] == 3 and report["ok"] and len(report["healthy"]) == 3
        assert "Nightly Azure Backup check FAILED" not in task_logs()

    def test_failed_backup_and_stale_items_fail_the_run(
        self, nightly_check: Any, emulator: Emulator, task_logs: Any
    ) -> None:
        from airflow.utils.state import DagRunState, TaskInstanceState

        emulator.configure(operation_polls_in_progress=0)
        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=60)
        hook = AzureBackupHook(operation_poll_interval=0.05)
        job = hook.wait_for_job(
            hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id, poll_interval=0.2
        )
        assert job.status == "Failed"
        dag_run, tis = run(nightly_check.dag, max_age_hours=0.0001)  # every other item is now "too old"
        assert dag_run.state == DagRunState.FAILED
        assert tis["check"].state == TaskInstanceState.FAILED
        report = xcom(tis["check"], "health_report")
        assert [(f["item"], f["job_id"]) for f in report["failed"]] == [("vm-app-01", job.job_id)]
        assert str(job.errors[0].code) in report["failed"][0]["reason"]
        assert {s["item"] for s in report["stale"]} == {"share-reports", "salesdb"}
        logs = task_logs()
        assert "Nightly Azure Backup check FAILED: 3 unhealthy item(s)" in logs
        assert f"FAILED {report['vaults'][0]} vm-app-01: latest backup job {job.job_id}" in logs

    def test_unreadable_vault_is_reported_next_to_the_readable_one(
        self, nightly_check: Any, emulator: Emulator
    ) -> None:
        from airflow.utils.state import DagRunState

        dag_run, tis = run(nightly_check.dag, vaults=["rg-gone/vault-gone", "rg-backup-demo/vault-demo"])
        assert dag_run.state == DagRunState.FAILED
        report = xcom(tis["check"], "health_report")
        assert [e["vault"] for e in report["vault_errors"]] == ["rg-gone/vault-gone"]
        assert len(report["healthy"]) == 3


@pytest.fixture(scope="module")
def restore_drill() -> Any:
    return load_module(REPO / "example_dags" / "azure_backup_restore_drill.py")


@pytest.mark.usefixtures("airflow_db")
class TestRestoreDrill:
    @pytest.fixture(autouse=True)
    def _quick(self, emulator: Emulator) -> None:
        emulator.configure(operation_polls_in_progress=0)
        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=600)

    def test_latest_point_is_restored_to_staging_and_reported(self, restore_drill: Any, emulator: Emulator) -> None:
        from airflow.utils.state import DagRunState

        points = AzureBackupHook().list_recovery_points(VM_ITEM.container_name, VM_ITEM.protected_item_name)
        latest = max(points, key=lambda p: p.recovery_point_time).recovery_point_id  # type: ignore[arg-type,return-value]
        dag_run, tis = run(restore_drill.dag)
        assert dag_run.state == DagRunState.SUCCESS, {t: ti.state for t, ti in tis.items()}
        job_id = xcom(tis["restore"])
        # Airflow 3 reads a numeric string back from XCom as a number.
        assert str(xcom(tis["restore"], "recovery_point_id")) == latest
        assert emulator.job(job_id).operation == "Restore" and emulator.job(job_id).status == "Completed"
        [post] = [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/restore")]
        assert f"/recoveryPoints/{latest}/restore" in post.path
        assert post.body["properties"]["storageAccountId"].endswith("/storageAccounts/strestorestaging")
        assert post.body["properties"]["recoveryType"] == "RestoreDisks"
        checked = xcom(tis["verify_restore"])
        assert checked["status"] == "Completed" and checked["recovery_point_id"] == latest
        message = xcom(tis["notify"])
        assert message["ok"] and message["title"] == "Azure Backup restore drill: Restore of vm-app-01 Completed"
        assert ["Job", job_id] in message["facts"]

    def test_failed_restore_fails_the_drill_and_names_the_job(
        self, restore_drill: Any, emulator: Emulator, task_logs: Any
    ) -> None:
        from airflow.utils.state import DagRunState, TaskInstanceState

        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=600)
        dag_run, tis = run(restore_drill.dag)
        assert dag_run.state == DagRunState.FAILED
        assert tis["wait_for_restore"].state == TaskInstanceState.FAILED
        job_id = xcom(tis["restore"])
        assert f"Azure Backup restore drill FAILED: job {job_id} failed" in task_logs()


@pytest.mark.usefixtures("airflow_db")
class TestNightlyCheckOnASeededFleet:
    def test_reports_exactly_the_seeded_unhealthy_items(
        self, nightly_check: Any, emulator: Emulator, task_logs: Any
    ) -> None:
        from airflow.utils.state import DagRunState

        from airflow_backup_provider.emulator import RESOURCE_GROUP, VAULT_NAME

        seeded = emulator.seed_health_states(VAULT_NAME)  # vm-stale, vm-never, share-failed, db-stopped
        dag_run, tis = run(nightly_check.dag)
        assert dag_run.state == DagRunState.FAILED
        report = xcom(tis["check"], "health_report")

        def names(category: str) -> set[str]:
            return {e["item"] for e in report[category]}

        assert names("stale") == {seeded["stale"].friendly_name, seeded["never"].friendly_name}
        assert names("failed") == {seeded["failed"].friendly_name}
        assert names("protection_stopped") == {seeded["stopped"].friendly_name}
        assert names("protection_error") == set() and report["vault_errors"] == []
        assert names("healthy") == {"vm-app-01", "share-reports", "salesdb"}
        assert report["items"] == 7
        never = next(e for e in report["stale"] if e["item"] == seeded["never"].friendly_name)
        assert never["reason"] == "never backed up"
        assert {e["vault"] for e in report["failed"]} == {f"{RESOURCE_GROUP}/{VAULT_NAME}"}
        assert "Nightly Azure Backup check FAILED: 4 unhealthy item(s)" in task_logs()

    def test_ten_vaults_request_count(self, nightly_check: Any, emulator: Emulator) -> None:
        """The nightly check over 10 vaults: one token, then two paged lists per vault (items, backup jobs)."""
        from airflow.utils.state import DagRunState

        from airflow_backup_provider.emulator import RESOURCE_GROUP, VAULT_NAME

        vaults = [f"{RESOURCE_GROUP}/{VAULT_NAME}"]
        for number in range(2, 11):
            name = f"vault-{number:02d}"
            emulator.add_vault("rg-fleet", name)
            for kind, item in (("VM", f"vm-{number:02d}"), ("AzureFileShare", f"share-{number:02d}")):
                emulator.add_item(name, kind, item, resource_group="rg-fleet", storage_account=f"stfleet{number:02d}")
            vaults.append(f"rg-fleet/{name}")
        emulator.seed_health_states("rg-fleet/vault-07")
        emulator.clear_requests()
        dag_run, tis = run(nightly_check.dag, vaults=vaults)
        assert dag_run.state == DagRunState.FAILED  # vault-07's seeded states
        report = xcom(tis["check"], "health_report")
        assert report["vaults"] == vaults and report["items"] == 3 + 9 * 2 + 4
        assert {e["vault"] for c in ("stale", "failed", "protection_stopped") for e in report[c]} == {
            "rg-fleet/vault-07"
        }
        arm = [r for r in emulator.requests if "/subscriptions/" in r.path.lower()]
        tokens = [r for r in emulator.requests if r.path.endswith("/oauth2/v2.0/token")]
        assert len(tokens) == 1
        assert len(arm) == 2 * len(vaults)  # every list fits one page
        assert {r.method for r in arm} == {"GET"}
        print(f"nightly check over {len(vaults)} vaults: {len(tokens)} token + {len(arm)} ARM requests")

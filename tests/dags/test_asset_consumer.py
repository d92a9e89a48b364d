"""A backup run emits the item's asset event and queues the DAG scheduled on it; a restore run queues nothing."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from airflow_backup_provider.assets import backup_asset_uri
from airflow_backup_provider.emulator import RESOURCE_GROUP, SUBSCRIPTION_ID, VAULT_NAME, VM_ITEM, Emulator
from tests.dags.test_example_dags import REPO, load_module, run

AIRFLOW_3 = importlib.metadata.version("apache-airflow") >= "3"
CONSUMER = "azure_backup_asset_consumer"
VM_URI = backup_asset_uri(SUBSCRIPTION_ID, RESOURCE_GROUP, VAULT_NAME, VM_ITEM.protected_item_name)


def events_and_queue() -> tuple[list[dict[str, Any]], list[str]]:
    """Asset (dataset) events of the VM's URI, and the DAG ids queued to run because of them."""
    from airflow.utils.session import create_session

    if AIRFLOW_3:
        from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel

        event_model, asset_model, queue_model, fk = AssetEvent, AssetModel, AssetDagRunQueue, "asset_id"
    else:
        from airflow.models.dataset import (  # type: ignore[no-redef]
            DatasetDagRunQueue as queue_model,
        )
        from airflow.models.dataset import (
            DatasetEvent as event_model,
        )
        from airflow.models.dataset import (
            DatasetModel as asset_model,
        )

        fk = "dataset_id"
    with create_session() as session:
        asset = session.query(asset_model).filter(asset_model.uri == VM_URI).one_or_none()
        if asset is None:
            return [], []
        events = [
            {"extra": e.extra, "source_task_id": e.source_task_id}
            for e in session.query(event_model).filter(getattr(event_model, fk) == asset.id)
        ]
        queued = [q.target_dag_id for q in session.query(queue_model).filter(getattr(queue_model, fk) == asset.id)]
    return events, queued


def clear_queue() -> None:
    from airflow.utils.session import create_session

    if AIRFLOW_3:
        from airflow.models.asset import AssetDagRunQueue as Queue
    else:
        from airflow.models.dataset import DatasetDagRunQueue as Queue  # type: ignore[no-redef]
    with create_session() as session:
        session.query(Queue).delete()


@pytest.fixture(scope="module")
def modules() -> dict[str, Any]:
    return {
        name: load_module(REPO / "example_dags" / f"{name}.py")
        for name in ("azure_backup_verify_notify", "azure_backup_restore_drill", CONSUMER)
    }


@pytest.mark.usefixtures("airflow_db")
def test_backup_run_queues_the_consumer_and_restore_does_not(modules: dict[str, Any], emulator: Emulator) -> None:
    from airflow.utils.state import DagRunState

    emulator.configure(operation_polls_in_progress=0)
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=600)
    consumer = modules[CONSUMER].dag
    producer = modules["azure_backup_verify_notify"].azure_backup_verify_notify
    if not AIRFLOW_3:
        # Airflow 3's dag.test() syncs the whole DAG folder (as the DAG processor would); 2.11's syncs nothing.
        consumer.sync_to_db()
        producer.sync_to_db()
    clear_queue()

    dag_run, tis = run(producer)
    assert dag_run.state == DagRunState.SUCCESS
    job_id = tis["trigger_backup"].xcom_pull(task_ids="trigger_backup")
    events, queued = events_and_queue()
    # One event from the sensor (the backup job succeeded), one from the passed verification.
    assert sorted(e["source_task_id"] for e in events) == ["verify", "wait_for_backup"]
    assert all(e["extra"]["job_id"] == job_id and e["extra"]["status"] == "Completed" for e in events)
    assert queued == [CONSUMER]  # the consumer's run is queued

    clear_queue()
    drill_run, _ = run(modules["azure_backup_restore_drill"].dag)
    assert drill_run.state == DagRunState.SUCCESS
    after_restore, queued = events_and_queue()
    assert len(after_restore) == len(events) and queued == []  # a restore is not a backup

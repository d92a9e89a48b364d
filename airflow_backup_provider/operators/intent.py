"""Write-ahead intent: a task records what it is about to POST, durably, before it posts.

The rule (backups and restores alike): before a POST that starts a job, the task records when it posts, for which
item and operation; once Azure accepts (202), the operation id is added. A later try that finds such a record looks
for the job that POST may have started — finished jobs included — and attaches to it *as its own*; it POSTs again
only when that search succeeded and proved there is no such job (or the job it started has failed). A hard-killed
worker therefore never leads to a second backup.

Where the record lives:

- **Airflow 3.3+**: the task state store (``context["task_state_store"]``), under the operator's ``external_id_key``:
  ``{"job_id": None, "owned": True, "posted_at": ..., "try_number": ..., "item": ..., "operation": ...,
  "operation_id": ...}``. It survives retries, worker death and a new worker host; ``ResumableJobMixin`` replaces it
  with ``{"job_id", "owned"}`` once the job id is known. A record that cannot be written means no POST.
- **Airflow 2.11** (no store, and XCom is cleared on retry): nothing can be written ahead, so a try after the first
  derives the record from the metadata DB: the start of the earliest of the uninterrupted run of unsuccessful tries
  just before this one (``task_instance_history``), else the DAG run's start. Residual risk, 2.11 only: a job of the
  same item that someone else started in that window (the portal, another DAG) is taken for this task's own.

This module holds only where the record lives; what a record means for the search is
:func:`airflow_backup_provider.protocol.find_jobs_of_request`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

log = logging.getLogger(__name__)

# States a try can be left in by a failure or a kill (None: the process died before any state was written).
UNSUCCESSFUL_TRY_STATES = frozenset({"failed", "up_for_retry", "up_for_reschedule", "restarting", "running", None})


@dataclass(frozen=True)
class Intent:
    """An earlier try's POST that may have started a job: when, and (if Azure's 202 arrived) its operation."""

    posted_at: datetime
    operation_id: str | None
    source: Literal["task_state_store", "task_instance_history", "dag_run_start"]


def read_intent(context: Mapping[str, Any], key: str) -> Intent | None:
    """The intent an earlier try left, if any (see the module docstring for where it comes from)."""
    store = context.get("task_state_store")
    if store is not None:
        stored = store.get(key)
        if isinstance(stored, Mapping) and not stored.get("job_id") and stored.get("posted_at"):
            return Intent(
                posted_at=_aware(datetime.fromisoformat(str(stored["posted_at"]))),
                operation_id=str(stored["operation_id"]) if stored.get("operation_id") else None,
                source="task_state_store",
            )
        return None
    return _intent_from_metadata_db(context)


def write_intent(
    context: Mapping[str, Any], key: str, *, item: str, operation: str, posted_at: datetime
) -> dict[str, Any] | None:
    """Record the intent before the POST; return the record, or None where nothing can be written (Airflow 2).

    A store that refuses the write raises: posting without a record would reopen the window this closes.
    """
    store = context.get("task_state_store")
    if store is None:
        return None
    ti = context.get("ti")
    record = {
        "job_id": None,
        "owned": True,
        "posted_at": posted_at.isoformat(),
        "try_number": getattr(ti, "try_number", None),
        "item": item,
        "operation": operation,
        "operation_id": None,
    }
    store.set(key, record)
    return record


def record_operation(context: Mapping[str, Any], key: str, record: dict[str, Any] | None, operation_id: str) -> None:
    """Add the operation id of the accepted POST to the record (best effort: the posted_at search still works)."""
    store = context.get("task_state_store")
    if store is None or record is None or not operation_id:
        return
    try:
        store.set(key, {**record, "operation_id": operation_id})
    except Exception as exc:  # the POST was accepted: never fail the task for a lost refinement
        log.warning("Could not record operation %s in the task state store: %s", operation_id, exc)


def _intent_from_metadata_db(context: Mapping[str, Any]) -> Intent | None:
    ti = context.get("ti")
    try_number = int(getattr(ti, "try_number", 1) or 1)
    if ti is None or try_number <= 1:
        return None
    started = _start_of_unsuccessful_tries(ti, try_number)
    if started is not None:
        return Intent(posted_at=started, operation_id=None, source="task_instance_history")
    dag_run = context.get("dag_run")
    run_start = getattr(dag_run, "start_date", None)
    if run_start is not None:
        return Intent(posted_at=_aware(run_start), operation_id=None, source="dag_run_start")
    return None


def _start_of_unsuccessful_tries(ti: Any, try_number: int) -> datetime | None:
    """Start of the earliest try in the unbroken run of unsuccessful tries before ``try_number`` (Airflow 2.10+).

    A try that ended in success (a user cleared the task to run it again) ends the run: that is a new request.
    """
    try:
        from airflow.models.taskinstancehistory import TaskInstanceHistory as History
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = (
                session.query(History.try_number, History.state, History.start_date)
                .filter(
                    History.dag_id == ti.dag_id,
                    History.task_id == ti.task_id,
                    History.run_id == ti.run_id,
                    History.map_index == getattr(ti, "map_index", -1),
                    History.try_number < try_number,
                )
                .order_by(History.try_number.desc())
                .all()
            )
    except Exception as exc:  # no DB access from this process: fall back to the DAG run's start
        log.info("Task history not readable (%s); using the DAG run's start.", exc)
        return None
    earliest: datetime | None = None
    for _, state, start_date in rows:
        if getattr(state, "value", state) not in UNSUCCESSFUL_TRY_STATES:
            break
        if start_date is not None:
            earliest = _aware(start_date)
    return earliest


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

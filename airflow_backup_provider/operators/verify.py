"""Operator that verifies a finished backup: the job, a new recovery point, the item's health, the RPO."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_backup_provider import protocol
from airflow_backup_provider.assets import add_backup_outlet, emit_backup_asset_event
from airflow_backup_provider.core import verification
from airflow_backup_provider.core.verification import Check
from airflow_backup_provider.exceptions import AzureBackupConfigError, AzureBackupVerificationError
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.links.backup import AzureBackupJobLink
from airflow_backup_provider.operators.backup import push_job_xcom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

VERIFICATION_XCOM_KEY = "verification"
# Recovery point filters have whole seconds: list from a little before the job start, then compare exactly.
_FILTER_MARGIN = timedelta(minutes=1)


class VerifyBackupOperator(BaseOperator):
    """
    Verify a backup job: it succeeded, it left a recovery point, the item is healthy, the newest point is recent.

    Checks (each reported by name, all of them run even when one fails):

    - ``job_succeeded``: the job is a backup that ended ``Completed`` (or ``CompletedWithWarnings`` when
      ``allow_warnings``).
    - ``recovery_point_exists``: a recovery point of the item at or after the job's start time.
    - ``item_healthy`` (with ``require_healthy_item``): ``protectionState`` is ``Protected``, ``healthStatus`` /
      ``protectedItemHealthStatus`` are good and ``lastBackupStatus`` is good for the item's type (``Completed`` on a
      VM, ``Healthy`` on workload and file-share items); the ``2001-01-01`` "never backed up" sentinel fails it.
    - ``recovery_point_recent`` (with ``max_recovery_point_age``): the newest recovery point is at most that old.

    A passed verification emits the item's asset event (:mod:`airflow_backup_provider.assets`).

    Returns the report ``{"ok", "job_id", "item", "status", "recovery_point_id", "recovery_point_time", "checks"}``,
    also pushed under XCom key ``verification`` — before raising
    :class:`~airflow_backup_provider.exceptions.AzureBackupVerificationError` (every failed check and its detail)
    when a check fails, so that a notifier can report it.

    :param job_id: The backup job id, usually ``{{ ti.xcom_pull(task_ids='trigger_backup') }}``. (templated)
    :param container_name: Container name of the item (``IaasVMContainer;...``). (templated)
    :param protected_item_name: Protected item name (``VM;...``). (templated)
    :param vault_name: Vault; default: the connection's. (templated)
    :param resource_group_name: Resource group; default: the connection's. (templated)
    :param azure_backup_conn_id: The Azure Backup connection id. (templated)
    :param allow_warnings: Accept a job that ended ``CompletedWithWarnings``.
    :param require_healthy_item: Run the ``item_healthy`` check.
    :param max_recovery_point_age: ``timedelta`` or seconds: the newest recovery point must be at least this recent.
    :param hook_params: Extra keyword arguments for :class:`AzureBackupHook` (timeouts, retry policy).
    """

    template_fields: Sequence[str] = (
        "job_id",
        "container_name",
        "protected_item_name",
        "vault_name",
        "resource_group_name",
        "azure_backup_conn_id",
    )
    operator_extra_links = (AzureBackupJobLink(),)
    ui_color = "#2e8b57"

    def __init__(
        self,
        *,
        job_id: str,
        container_name: str,
        protected_item_name: str,
        vault_name: str | None = None,
        resource_group_name: str | None = None,
        azure_backup_conn_id: str = AzureBackupHook.default_conn_name,
        allow_warnings: bool = True,
        require_healthy_item: bool = True,
        max_recovery_point_age: timedelta | float | None = None,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**add_backup_outlet(kwargs))
        self.job_id = job_id
        self.container_name = container_name
        self.protected_item_name = protected_item_name
        self.vault_name = vault_name
        self.resource_group_name = resource_group_name
        self.azure_backup_conn_id = azure_backup_conn_id
        self.allow_warnings = allow_warnings
        self.require_healthy_item = require_healthy_item
        self.max_recovery_point_age = verification.coerce_timedelta(
            "max_recovery_point_age", max_recovery_point_age, unit=timedelta(seconds=1), allow_none=True
        )
        self.hook_params = dict(hook_params or {})

    @cached_property
    def hook(self) -> AzureBackupHook:
        return AzureBackupHook(self.azure_backup_conn_id, **self.hook_params)

    def _checked_job_id(self) -> str:
        job_id = self.job_id
        if not isinstance(job_id, str) or not job_id.strip() or job_id.strip() == "None":
            raise AzureBackupConfigError("job_id", job_id, "is empty; did the trigger task push its job id to XCom?")
        return protocol.require_name("job_id", job_id.strip())

    def execute(self, context: Context) -> dict[str, Any]:
        job_id = self._checked_job_id()
        where = {"resource_group_name": self.resource_group_name, "vault_name": self.vault_name}
        job = self.hook.get_job(job_id, **where)
        push_job_xcom(self.hook, context, job.job_id, self.hook.vault_ref(self.resource_group_name, self.vault_name))
        checks: list[Check] = [verification.check_job_succeeded(job, allow_warnings=self.allow_warnings)]

        item_name = job.entity_friendly_name or self.protected_item_name
        item = None
        if self.require_healthy_item:
            item = self.hook.get_protected_item(self.container_name, self.protected_item_name, **where)
            item_name = item.friendly_name or item_name

        now = datetime.now(timezone.utc)
        starts = [job.start_time - _FILTER_MARGIN] if job.start_time else []
        if self.max_recovery_point_age is not None:
            starts.append(now - self.max_recovery_point_age - _FILTER_MARGIN)
        points = self.hook.list_recovery_points(
            self.container_name,
            self.protected_item_name,
            start_time=min(starts) if starts else None,
            **where,
        )
        exists, point = verification.check_recovery_point_exists(points, job.start_time, item_name)
        checks.append(exists)
        if item is not None:
            checks.append(verification.check_item_healthy(item))
        if self.max_recovery_point_age is not None:
            checks.append(verification.check_recovery_point_recent(points, self.max_recovery_point_age, now, item_name))

        report = verification.build_verification_report(
            job=job, item_name=item_name, checks=checks, recovery_point=point
        )
        context["ti"].xcom_push(key=VERIFICATION_XCOM_KEY, value=report)
        for check in checks:
            self.log.info("%s %s: %s", "PASS" if check.ok else "FAIL", check.name, check.detail)
        if not report["ok"]:
            raise AzureBackupVerificationError(verification.verification_failure_message(report), report=report)
        emit_backup_asset_event(
            self,
            context,
            self.hook,
            job,
            protected_item_name=self.protected_item_name,
            container_name=self.container_name,
            **where,
        )
        return report

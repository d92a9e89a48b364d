"""Operator that restores a protected item from a recovery point (a restore drill, or the real thing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_backup_provider import protocol
from airflow_backup_provider.assets import BACKUP_ASSET_ALIAS
from airflow_backup_provider.core.verification import newest_point
from airflow_backup_provider.exceptions import AzureBackupConfigError, AzureBackupError
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.operators import intent
from airflow_backup_provider.operators.backup import TriggerBackupOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

RECOVERY_POINT_XCOM_KEY = "recovery_point_id"
LATEST = "latest"


class TriggerRestoreOperator(TriggerBackupOperator):
    """
    Restore a protected item from a recovery point and return the restore job id.

    The job id is pushed under XCom key ``job_id`` (and returned), the recovery point under ``recovery_point_id``;
    :class:`~airflow_backup_provider.sensors.backup.BackupJobSensor` waits on restore jobs unchanged (a restore job
    never emits the item's backup asset event).

    A retried task never restores twice: the same write-ahead intent as
    :class:`~airflow_backup_provider.operators.backup.TriggerBackupOperator` (this class reuses its job handling and
    :mod:`airflow_backup_provider.operators.intent`). Before the POST the task records when it posts (Airflow 3.3:
    the task state store; 2.11: derived from the task's earlier tries); a retry that finds the record searches the
    item's restore jobs since then and attaches to the one that POST started, as its own, instead of posting again.
    An answer lost after Azure acted (reset, 5xx, lost operation) is handled the same way within one try.

    :param container_name: Container name of the item (``IaasVMContainer;...``). (templated)
    :param protected_item_name: Protected item name (``VM;...``). (templated)
    :param restore_request: The ``RestoreRequest`` properties: ``objectType`` ``IaasVMRestoreRequest``,
        ``AzureFileShareRestoreRequest``, ``AzureWorkloadSQLRestoreRequest``...; sent as ``{"properties": ...}``.
        An IaaS VM request gets the chosen ``recoveryPointId`` when it names none. (templated)
    :param recovery_point_id: A recovery point id, or ``"latest"``: the item's newest recovery point. (templated)
    :param vault_name: Vault; default: the connection's. (templated)
    :param resource_group_name: Resource group; default: the connection's. (templated)
    :param azure_backup_conn_id: The Azure Backup connection id. (templated)
    :param wait_for_completion: Wait for the restore job to finish (poll, or defer when ``deferrable``).
    :param deferrable: Wait in the triggerer instead of a worker slot (with ``wait_for_completion``).
    :param cancel_on_kill: Cancel the restore job this task started when the task is killed.
    :param poll_interval: Seconds between job polls when waiting.
    :param wait_timeout: Seconds to wait for the job before failing (and cancelling when ``cancel_on_kill``).
    :param fail_on_warnings: Fail when the job ends ``CompletedWithWarnings``.
    :param hook_params: Extra keyword arguments for :class:`AzureBackupHook`.
    :param job_lookup_grace: Seconds to look for the job of a POST whose outcome is unknown before failing.
    """

    template_fields: Sequence[str] = (
        "container_name",
        "protected_item_name",
        "restore_request",
        "recovery_point_id",
        "vault_name",
        "resource_group_name",
        "azure_backup_conn_id",
    )
    template_fields_renderers = {"restore_request": "json"}
    ui_color = "#008575"
    external_id_key = "azure_backup_restore_job_id"

    def __init__(
        self,
        *,
        container_name: str,
        protected_item_name: str,
        restore_request: Mapping[str, Any],
        recovery_point_id: str = LATEST,
        vault_name: str | None = None,
        resource_group_name: str | None = None,
        azure_backup_conn_id: str = AzureBackupHook.default_conn_name,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        poll_interval: float = 60.0,
        wait_timeout: float | timedelta = timedelta(days=7),
        fail_on_warnings: bool = False,
        hook_params: Mapping[str, Any] | None = None,
        job_lookup_grace: float = 120.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            container_name=container_name,
            protected_item_name=protected_item_name,
            vault_name=vault_name,
            resource_group_name=resource_group_name,
            azure_backup_conn_id=azure_backup_conn_id,
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            cancel_on_kill=cancel_on_kill,
            poll_interval=poll_interval,
            wait_timeout=wait_timeout,
            fail_on_warnings=fail_on_warnings,
            hook_params=hook_params,
            job_lookup_grace=job_lookup_grace,
            **kwargs,
        )
        # A restore is no backup of the item: no backup asset outlet (TriggerBackupOperator declares one).
        self.outlets = [o for o in self.outlets if getattr(o, "name", None) != BACKUP_ASSET_ALIAS]
        self.restore_request = restore_request
        self.recovery_point_id = recovery_point_id
        if not _is_template(restore_request):
            self._properties(None)  # bad literals fail at parse time

    def _properties(self, recovery_point_id: str | None) -> dict[str, Any]:
        props = protocol.build_restore_request(self.restore_request)["properties"]  # the one objectType rule
        if recovery_point_id and str(props["objectType"]).startswith("IaasVM"):
            given = props.setdefault("recoveryPointId", recovery_point_id)
            if given != recovery_point_id:
                raise AzureBackupConfigError(
                    "restore_request", f"recoveryPointId={given}", f"differs from recovery_point_id={recovery_point_id}"
                )
        return props

    def _resolve_recovery_point(self) -> str:
        wanted = self.recovery_point_id
        if not isinstance(wanted, str) or not wanted.strip():
            raise AzureBackupConfigError("recovery_point_id", wanted, 'must be a recovery point id or "latest"')
        if wanted.strip().lower() != LATEST:
            return protocol.require_name("recovery_point_id", wanted.strip())
        points = self.hook.list_recovery_points(
            self.container_name,
            self.protected_item_name,
            resource_group_name=self.resource_group_name,
            vault_name=self.vault_name,
        )
        point = newest_point(points)
        if point is None:
            raise AzureBackupError(f"{self.protected_item_name} has no recovery point to restore from")
        self.log.info("Latest recovery point of %s: %s (%s)", self.protected_item_name, point.recovery_point_id,
                      point.recovery_point_time)  # fmt: skip
        return point.recovery_point_id

    # -- ResumableJobMixin ------------------------------------------------------------------------------------------
    job_operation = "Restore"  # the job search of TriggerBackupOperator looks for restore jobs

    def submit_job(self, context: Context) -> dict[str, Any]:
        """Start the restore — unless an earlier try's POST already did (write-ahead intent)."""
        self._properties(None)  # validate the rendered request before any request
        self._chosen_point: str | None = None
        earlier = intent.read_intent(context, self.external_id_key)
        if earlier is not None:
            recovered = self._recover_earlier_request(context, earlier)
            if recovered is not None:
                return recovered
        recovery_point_id = self._resolve_recovery_point()
        props = self._properties(recovery_point_id)
        self._chosen_point = recovery_point_id
        context["ti"].xcom_push(key=RECOVERY_POINT_XCOM_KEY, value=recovery_point_id)
        posted_at = datetime.now(timezone.utc)
        # Durable before the POST: a worker killed after Azure accepted it leaves this for the retry to find.
        record = intent.write_intent(
            context, self.external_id_key, item=self.protected_item_name, operation="Restore", posted_at=posted_at
        )
        self.log.info(
            "Restoring %s from recovery point %s (%s)", self.protected_item_name, recovery_point_id, props["objectType"]
        )
        try:
            triggered = self.hook.trigger_restore(
                self.container_name,
                self.protected_item_name,
                recovery_point_id,
                props,
                resource_group_name=self.resource_group_name,
                vault_name=self.vault_name,
                on_accepted=lambda handle: intent.record_operation(
                    context, self.external_id_key, record, handle.operation_id
                ),
            )
        except AzureBackupError as exc:
            return self._recover_uncertain_post(context, exc, posted_at)
        self.log.info("Restore of %s started: job %s", self.protected_item_name, triggered.job_id)
        return self._remember_found(context, triggered.job_id)

    def _remember_found(self, context: Context, job_id: str) -> dict[str, Any]:
        record = self._remember_job(context, job_id, owned=True)
        if self._chosen_point:
            context["ti"].xcom_push(key=RECOVERY_POINT_XCOM_KEY, value=self._chosen_point)
        return record

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger: validate the event, fail on failure, return the job id (no asset event)."""
        protocol.resolve_job_event(event, job_id=None, fail_on_warnings=self.fail_on_warnings)
        assert event is not None  # resolve_job_event raised otherwise
        return str(event["job_id"])


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value

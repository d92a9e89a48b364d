"""The nightly check: is every protected item of one or more vaults backed up recently and without failures?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator
from azure.core.exceptions import AzureError

from airflow_backup_provider.core import health
from airflow_backup_provider.core.verification import coerce_timedelta
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
    AzureBackupError,
    AzureBackupHealthCheckError,
)
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.protocol import BACKUP_MANAGEMENT_TYPES, BackupJob, ProtectedItem

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

HEALTH_REPORT_XCOM_KEY = "health_report"
HOUR = timedelta(hours=1)
FILTER_MARGIN = timedelta(minutes=5)


class BackupHealthCheckOperator(BaseOperator):
    """
    Check every protected item of one or more vaults: recent successful backup, no failed job, protection on.

    For every vault it lists the protected items (paged) and the backup jobs of the ``lookback`` window (``$filter``
    on ``startTime`` / ``endTime`` in the service's date format, paged) — two requests per vault and backup
    management type, plus ``nextLink`` pages — and classifies each item as exactly one of ``healthy``, ``stale``,
    ``failed``, ``protection_stopped`` or ``protection_error`` (see :mod:`airflow_backup_provider.core.health`).
    ``CompletedWithWarnings`` jobs are listed under ``warnings`` without failing the check.

    Returns the report ``{"checked_at", "vaults", "items", "healthy", "stale", "failed", "protection_stopped",
    "protection_error", "warnings", "vault_errors", "ok", ...}``; every entry has ``vault``, ``item``,
    ``container_name``, ``protected_item_name``, ``last_backup_time``, ``last_backup_status`` and ``reason``. The
    report is pushed under XCom key ``health_report`` first; then, with ``fail_on_unhealthy`` and anything
    unhealthy, :class:`~airflow_backup_provider.exceptions.AzureBackupHealthCheckError` is raised (counts and the
    first items with reasons). A vault that cannot be read is reported under ``vault_errors`` — the other vaults are
    still checked — and always fails the task: an unchecked vault is not a healthy one.

    :param vaults: ``"resource_group/vault"`` strings; default: the connection's vault. (templated)
    :param max_age: The RPO: ``timedelta`` or hours (default 26 h); an older last successful backup is ``stale``.
        (templated)
    :param lookback: ``timedelta`` or hours (default 24 h): the window of backup jobs to look at. (templated)
    :param backup_management_types: Only these types, e.g. ``["AzureIaasVM", "AzureStorage", "AzureWorkload"]``;
        default: every item. (templated)
    :param fail_on_unhealthy: Fail the task when an item is not healthy.
    :param azure_backup_conn_id: The Azure Backup connection id. (templated)
    :param hook_params: Extra keyword arguments for :class:`AzureBackupHook` (timeouts, retry policy).
    """

    template_fields: Sequence[str] = (
        "vaults",
        "max_age",
        "lookback",
        "backup_management_types",
        "azure_backup_conn_id",
    )
    ui_color = "#5c2d91"

    def __init__(
        self,
        *,
        vaults: Sequence[str] | None = None,
        max_age: timedelta | float | str = timedelta(hours=26),
        lookback: timedelta | float | str = timedelta(hours=24),
        backup_management_types: Sequence[str] | None = None,
        fail_on_unhealthy: bool = True,
        azure_backup_conn_id: str = AzureBackupHook.default_conn_name,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vaults = vaults
        self.max_age = max_age
        self.lookback = lookback
        self.backup_management_types = backup_management_types
        self.fail_on_unhealthy = fail_on_unhealthy
        self.azure_backup_conn_id = azure_backup_conn_id
        self.hook_params = dict(hook_params or {})
        if not _is_template(max_age) and not _is_template(lookback):
            self._settings()  # fail at parse time on bad literals
        if vaults is not None and not _is_template(vaults):
            self._vault_specs()
        if backup_management_types is not None and not _is_template(backup_management_types):
            self._types()

    @cached_property
    def hook(self) -> AzureBackupHook:
        return AzureBackupHook(self.azure_backup_conn_id, **self.hook_params)

    def _settings(self) -> tuple[timedelta, timedelta]:
        max_age = coerce_timedelta("max_age", self.max_age, unit=HOUR)
        lookback = coerce_timedelta("lookback", self.lookback, unit=HOUR)
        assert max_age is not None and lookback is not None
        return max_age, lookback

    def _vault_specs(self) -> list[tuple[str | None, str | None]]:
        if self.vaults is None:
            return [(None, None)]
        if isinstance(self.vaults, str) or not isinstance(self.vaults, Sequence) or not self.vaults:
            raise AzureBackupConfigError("vaults", self.vaults, 'must be a non-empty list of "resource_group/vault"')
        return [health.parse_vault_spec(v) for v in self.vaults]

    def _types(self) -> list[str | None]:
        types = self.backup_management_types
        if types is None:
            return [None]
        if isinstance(types, str) or not isinstance(types, Sequence) or not types:
            raise AzureBackupConfigError("backup_management_types", types, "must be a non-empty list")
        for value in types:
            if value not in BACKUP_MANAGEMENT_TYPES:
                raise AzureBackupConfigError(
                    "backup_management_types", value, f"must be one of {sorted(BACKUP_MANAGEMENT_TYPES)}"
                )
        return list(dict.fromkeys(types))

    def _read_vault(
        self, rg: str | None, vault: str | None, types: list[str | None], start: datetime, end: datetime
    ) -> tuple[list[ProtectedItem], list[BackupJob]]:
        items: list[ProtectedItem] = []
        jobs: list[BackupJob] = []
        for bmt in types:
            items += self.hook.list_protected_items(
                backup_management_type=bmt, resource_group_name=rg, vault_name=vault
            )
            jobs += self.hook.list_jobs(
                operation="Backup",
                backup_management_type=bmt,
                start_time=start,
                end_time=end,
                resource_group_name=rg,
                vault_name=vault,
            )
        return items, jobs

    def execute(self, context: Context) -> dict[str, Any]:
        max_age, lookback = self._settings()
        specs = self._vault_specs()
        types = self._types()
        now = datetime.now(timezone.utc)
        builder = health.HealthReportBuilder(checked_at=now, max_age=max_age, lookback=lookback)
        for rg, vault in specs:
            ref = self.hook.vault_ref(rg, vault)  # config errors (no default vault) fail the task
            name = f"{ref.resource_group_name}/{ref.vault_name}"
            try:
                # The filter has whole seconds: reach past "now" so that a job started this second is included.
                items, jobs = self._read_vault(rg, vault, types, now - lookback, now + FILTER_MARGIN)
            except (AzureBackupError, AzureError) as exc:
                self.log.error("Could not read vault %s: %s", name, exc)
                builder.add_vault_error(name, exc)
                continue
            builder.add_vault(name, items, jobs)
            self.log.info("Vault %s: %d protected items, %d backup jobs in the window", name, len(items), len(jobs))
        report = builder.build()
        context["ti"].xcom_push(key=HEALTH_REPORT_XCOM_KEY, value=report)
        for category in health.UNHEALTHY:
            for entry in report[category]:
                self.log.warning("%s: %s %s: %s", category.upper(), entry["vault"], entry["item"], entry["reason"])
        for entry in report["warnings"]:
            self.log.info("warning: %s %s: %s", entry["vault"], entry["item"], entry["reason"])
        unhealthy = any(report[c] for c in health.UNHEALTHY)
        if report["vault_errors"] or (unhealthy and self.fail_on_unhealthy):
            raise AzureBackupHealthCheckError(health.health_failure_message(report), report=report)
        self.log.info("%d items in %d vault(s): %d healthy", report["items"], len(specs), len(report["healthy"]))
        return report


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value

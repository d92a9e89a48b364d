"""Airflow Assets (Datasets on 2.11) for protected items: "this item was backed up".

Each protected item is the asset ``azure-backup://{subscription}/{resource_group}/{vault}/{protected_item_name}``,
every segment percent-encoded with ``urllib.parse.quote(segment, safe="")`` (so ``;`` becomes ``%3B``). A successful
wait on a **backup** job (``BackupJobSensor``, ``TriggerBackupOperator(wait_for_completion=True)``) and a passed
``VerifyBackupOperator`` emit an event for the item through the asset alias :data:`BACKUP_ASSET_ALIAS` (the item is
known only at run time; the operators declare it as an outlet with :func:`add_backup_outlet`); restore jobs never
emit. Downstream DAGs schedule on the item's asset::

    from airflow.sdk import Asset  # airflow.datasets.Dataset on Airflow 2.11
    from airflow_backup_provider.assets import backup_asset_uri

    item = "VM;iaasvmcontainerv2;rg-app;vm-app-01"
    schedule = [Asset(backup_asset_uri(subscription_id, "rg-backup-demo", "vault-demo", item))]

The URI normalizer :func:`normalize_backup_asset_uri` is registered under ``asset-uris`` (``dataset-uris`` on 2.11).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import version
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, unquote

from airflow.providers.common.compat.sdk import Asset, AssetAlias

if TYPE_CHECKING:
    from airflow_backup_provider.hooks.backup import AzureBackupHook
    from airflow_backup_provider.protocol import BackupJob

log = logging.getLogger(__name__)

AIRFLOW_3 = version("apache-airflow") >= "3"
SCHEME = "azure-backup"
BACKUP_ASSET_ALIAS = "azure-backup-items"


def _segment(fieldname: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        from airflow_backup_provider.exceptions import AzureBackupConfigError

        raise AzureBackupConfigError(fieldname, value, "must be a non-empty string")
    return quote(value, safe="")


def backup_asset_uri(subscription_id: str, resource_group_name: str, vault_name: str, protected_item_name: str) -> str:
    """The asset URI of a protected item."""
    parts = (
        _segment("subscription_id", subscription_id),
        _segment("resource_group_name", resource_group_name),
        _segment("vault_name", vault_name),
        _segment("protected_item_name", protected_item_name),
    )
    return f"{SCHEME}://" + "/".join(parts)


def backup_asset(subscription_id: str, resource_group_name: str, vault_name: str, protected_item_name: str) -> Any:
    """The ``Asset`` (``Dataset`` on 2.11) of a protected item."""
    return Asset(backup_asset_uri(subscription_id, resource_group_name, vault_name, protected_item_name))


def backup_asset_alias() -> Any:
    """The ``AssetAlias`` (``DatasetAlias`` on 2.11) through which backup events are emitted."""
    return AssetAlias(BACKUP_ASSET_ALIAS)


def add_backup_outlet(operator_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Add the :data:`BACKUP_ASSET_ALIAS` outlet to an operator's keyword arguments (before ``BaseOperator``).

    Declared at parse time, the alias is known to Airflow before the first event (Airflow 2.11 needs that).
    """
    outlets = operator_kwargs.get("outlets")
    outlets = list(outlets) if isinstance(outlets, (list, tuple)) else ([outlets] if outlets is not None else [])
    if not any(getattr(o, "name", None) == BACKUP_ASSET_ALIAS for o in outlets):
        outlets.append(backup_asset_alias())
    operator_kwargs["outlets"] = outlets
    return operator_kwargs


def normalize_backup_asset_uri(parts: SplitResult) -> SplitResult:
    """Airflow's URI normalizer for ``azure-backup://``: four non-empty segments, canonical percent-encoding.

    :raises ValueError: for a URI that does not name subscription, resource group, vault and item.
    """
    segments = parts.path.split("/")[1:] if parts.path.startswith("/") else []
    if not parts.netloc or len(segments) != 3 or not all(segments):
        raise ValueError(
            f"{SCHEME} URI {parts.geturl()!r} must be "
            f"{SCHEME}://{{subscription}}/{{resource_group}}/{{vault}}/{{protected_item_name}}"
        )
    netloc = quote(unquote(parts.netloc), safe="")
    path = "/" + "/".join(quote(unquote(s), safe="") for s in segments)
    return parts._replace(netloc=netloc, path=path, query="", fragment="")


def emit_backup_asset_event(
    task: Any,
    context: Mapping[str, Any],
    hook: AzureBackupHook,
    job: BackupJob | Mapping[str, Any],
    *,
    protected_item_name: str | None = None,
    container_name: str | None = None,
    resource_group_name: str | None = None,
    vault_name: str | None = None,
) -> str | None:
    """Emit the "item backed up" asset event for a finished backup job; return the asset URI (None: not emitted).

    Only for ``operation == "Backup"`` jobs. When the item is not given (the sensor knows only the job), the job is
    matched to the vault's protected items (one list request). Never raises: a failed emission is logged, the
    backup's outcome stands. The task gets the :data:`BACKUP_ASSET_ALIAS` outlet if it does not have it yet.
    """
    try:
        return _emit(
            task,
            context,
            hook,
            job,
            protected_item_name=protected_item_name,
            container_name=container_name,
            resource_group_name=resource_group_name,
            vault_name=vault_name,
        )
    except Exception as exc:  # an asset event must never fail a good backup
        log.warning("Could not emit the backup asset event: %s", exc)
        return None


def _emit(
    task: Any,
    context: Mapping[str, Any],
    hook: AzureBackupHook,
    job: Any,
    *,
    protected_item_name: str | None,
    container_name: str | None,
    resource_group_name: str | None,
    vault_name: str | None,
) -> str | None:
    from airflow_backup_provider import protocol

    where = {"resource_group_name": resource_group_name, "vault_name": vault_name}
    if isinstance(job, Mapping):  # a job summary: read the job for its container
        job = hook.get_job(str(job["job_id"]), **where)
    if job.operation != "Backup" or not protocol.status_is_success(job.status):
        return None
    if not protected_item_name:
        candidates = [
            item
            for item in hook.list_protected_items(
                backup_management_type=job.backup_management_type
                if job.backup_management_type in protocol.BACKUP_MANAGEMENT_TYPES
                else None,
                **where,
            )
            if protocol.job_matches_item(job, item)
        ]
        if len(candidates) != 1:
            log.warning(
                "Backup job %s matches %d protected items; no asset event emitted.", job.job_id, len(candidates)
            )
            return None
        protected_item_name = candidates[0].protected_item_name
        container_name = candidates[0].container_name
    vault = hook.vault_ref(resource_group_name, vault_name)
    uri = backup_asset_uri(vault.subscription_id, vault.resource_group_name, vault.vault_name, protected_item_name)
    alias = backup_asset_alias()
    outlets = getattr(task, "outlets", None)
    if not any(getattr(o, "name", None) == BACKUP_ASSET_ALIAS for o in outlets or ()):
        # Airflow registers alias events only for aliases among the task's outlets. Airflow 3 takes one added now;
        # Airflow 2.11 fails the task for an alias it has not seen at parse time (see add_backup_outlet).
        if not AIRFLOW_3 or not isinstance(outlets, list):
            log.info("Task has no %s outlet; no asset event for %s.", BACKUP_ASSET_ALIAS, uri)
            return None
        outlets.append(alias)
    if not AIRFLOW_3 and not _alias_in_metadata_db():
        # 2.11 fails the task for an alias event whose alias the DAG processor has not stored yet (a DAG run by
        # dag.test() without being parsed first): no event rather than a failed backup task.
        log.info("Dataset alias %s not in the metadata DB yet; no dataset event for %s.", BACKUP_ASSET_ALIAS, uri)
        return None
    extra = {
        "job_id": job.job_id,
        "status": job.status,
        "vault": f"{vault.resource_group_name}/{vault.vault_name}",
        "container_name": container_name,
        "protected_item_name": protected_item_name,
        "end_time": job.end_time.isoformat() if job.end_time else None,
    }
    context["outlet_events"][alias].add(Asset(uri), extra=extra)
    log.info("Asset event for %s (backup job %s).", uri, job.job_id)
    return uri


def _alias_in_metadata_db() -> bool:
    """Airflow 2.11: whether the DatasetAlias row exists (written when a DAG declaring it was parsed)."""
    from airflow.models.dataset import DatasetAliasModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return (
            session.query(DatasetAliasModel.id).filter(DatasetAliasModel.name == BACKUP_ASSET_ALIAS).first() is not None
        )

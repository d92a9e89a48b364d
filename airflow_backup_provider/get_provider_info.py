"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

INTEGRATION = "Azure Backup"
_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}


def _field(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {**_NULLABLE_STRING, **schema}}


def get_provider_info() -> dict[str, Any]:
    """Return the provider description: modules, connection type and its UI form, extra links."""
    return {
        "package-name": "airflow-backup-provider",
        "name": "Azure Backup",
        "description": "Trigger Azure Backup jobs on Recovery Services vaults, wait for them, verify and notify.",
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://learn.microsoft.com/rest/api/backup/",
                "tags": ["azure"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_backup_provider.hooks.backup"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_backup_provider.operators.backup",
                    "airflow_backup_provider.operators.verify",
                    "airflow_backup_provider.operators.health",
                    "airflow_backup_provider.operators.restore",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_backup_provider.sensors.backup"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["airflow_backup_provider.triggers.backup"]}],
        "extra-links": ["airflow_backup_provider.links.backup.AzureBackupJobLink"],
        "notifications": [
            "airflow_backup_provider.notifications.backup.BackupSummaryNotifier",
            "airflow_backup_provider.notifications.backup.BackupReportNotifier",
        ],
        # Airflow 3 reads asset-uris, Airflow 2.11 dataset-uris.
        "asset-uris": [
            {"schemes": ["azure-backup"], "handler": "airflow_backup_provider.assets.normalize_backup_asset_uri"}
        ],
        "dataset-uris": [
            {"schemes": ["azure-backup"], "handler": "airflow_backup_provider.assets.normalize_backup_asset_uri"}
        ],
        "connection-types": [
            {
                "connection-type": "azure_backup",
                "hook-class-name": "airflow_backup_provider.hooks.backup.AzureBackupHook",
                "hook-name": "Azure Backup",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "host"],
                    "relabeling": {"login": "Client ID", "password": "Client Secret"},
                    "placeholders": {
                        "login": "application (client) id; leave empty for managed / workload identity",
                        "password": "client secret; leave empty for managed / workload identity",
                    },
                },
                "conn-fields": {
                    "tenant_id": _field("Tenant ID", "Entra ID tenant (required with a client secret)."),
                    "subscription_id": _field("Subscription ID", "Subscription that holds the vault (required)."),
                    "resource_group_name": _field("Resource group", "Default resource group of the vault."),
                    "vault_name": _field("Vault name", "Default Recovery Services vault."),
                    "cloud_environment": _field(
                        "Cloud",
                        "AzureCloud (default), AzureUSGovernment or AzureChinaCloud.",
                        # No None in the enum: the 3.3 UI labels it a literal "null". A cleared value reads as
                        # AzureCloud anyway (ConnectionSettings treats null and "" as unset).
                        enum=["AzureCloud", "AzureUSGovernment", "AzureChinaCloud"],
                        default="AzureCloud",
                    ),
                    "resource_manager_endpoint": _field(
                        "Resource Manager endpoint", "Overrides the cloud's ARM base URL (e.g. an emulator)."
                    ),
                    "authority_host": _field("Authority host", "Overrides the cloud's Entra ID authority host."),
                    "managed_identity_client_id": _field(
                        "Managed identity client ID", "User-assigned managed identity to sign in with."
                    ),
                    "workload_identity_tenant_id": _field(
                        "Workload identity tenant ID", "Tenant of the federated workload identity."
                    ),
                },
            }
        ],
    }

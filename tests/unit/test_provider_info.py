"""Provider registration: the entry point, get_provider_info() and what Airflow's ProvidersManager makes of it."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

import pytest

from airflow_backup_provider.get_provider_info import get_provider_info

DIST = "airflow-backup-provider"


def test_entry_point_points_at_get_provider_info() -> None:
    eps = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.dist and ep.dist.name == DIST
    ]
    assert [ep.value for ep in eps] == ["airflow_backup_provider.get_provider_info:get_provider_info"]
    assert eps[0].load()() == get_provider_info()


def test_package_name_matches_the_distribution() -> None:
    assert get_provider_info()["package-name"] == importlib.metadata.metadata(DIST)["Name"]


def test_every_listed_module_and_class_imports() -> None:
    info = get_provider_info()
    for layer in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[layer]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for path in [*info["extra-links"], *info["notifications"], info["connection-types"][0]["hook-class-name"]]:
        module, name = path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), name)


def test_connection_form_declares_the_public_field_names() -> None:
    conn = get_provider_info()["connection-types"][0]
    assert conn["connection-type"] == "azure_backup"
    assert set(conn["conn-fields"]) == {
        "tenant_id",
        "subscription_id",
        "resource_group_name",
        "vault_name",
        "cloud_environment",
        "resource_manager_endpoint",
        "authority_host",
        "managed_identity_client_id",
        "workload_identity_tenant_id",
    }
    assert conn["ui-field-behaviour"]["relabeling"] == {"login": "Client ID", "password": "Client Secret"}


def test_providers_manager_registers_the_hook_and_link() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert DIST in manager.providers
    assert "azure_backup" in manager.hooks
    assert "airflow_backup_provider.links.backup.AzureBackupJobLink" in manager.extra_links_class_names


def test_airflow2_form_widgets_mirror_conn_fields() -> None:
    from airflow_backup_provider.hooks.backup import AzureBackupHook

    widgets = AzureBackupHook.get_connection_form_widgets()
    try:
        import flask_appbuilder  # noqa: F401  (Airflow 2 only)
    except ImportError:
        assert widgets == {}  # Airflow 3 builds the form from conn-fields
    else:
        assert set(widgets) == set(get_provider_info()["connection-types"][0]["conn-fields"])
    behaviour = AzureBackupHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"login": "Client ID", "password": "Client Secret"}
    assert "extra" not in behaviour["hidden_fields"]


def test_cloud_select_defaults_to_azure_cloud_and_offers_no_null() -> None:
    """The 3.3 connection form shows the enum as a select: no literal "null" entry, AzureCloud preselected."""
    from airflow_backup_provider.get_provider_info import get_provider_info

    (conn_type,) = get_provider_info()["connection-types"]
    schema = conn_type["conn-fields"]["cloud_environment"]["schema"]
    assert None not in schema["enum"] and schema["default"] == "AzureCloud"


def test_airflow2_cloud_widget_is_a_select_defaulting_to_azure_cloud() -> None:
    pytest.importorskip("flask_appbuilder")  # the Airflow 2 form
    from airflow_backup_provider.hooks.backup import AzureBackupHook

    widgets = AzureBackupHook.get_connection_form_widgets()
    cloud = widgets["cloud_environment"]
    assert cloud.field_class.__name__ == "SelectField"
    assert cloud.kwargs["default"] == "AzureCloud"
    assert [value for value, _ in cloud.kwargs["choices"]] == ["AzureCloud", "AzureUSGovernment", "AzureChinaCloud"]
    assert widgets["vault_name"].kwargs["default"] == ""  # an empty field is not written as null


def test_sign_in_is_logged_once_by_the_provider_not_by_azure_identity(emulator: object, task_logs: Any) -> None:
    from airflow_backup_provider.hooks.backup import AzureBackupHook

    hook = AzureBackupHook()
    hook.get_token()
    hook.get_token(refresh=True)
    text = task_logs()
    assert "Signing in to Entra ID with ClientSecretCredential" in text
    assert "(token refresh)" not in text  # later sign-ins of the same hook are at debug level
    assert "get_token succeeded" not in text  # azure-identity's own INFO line is silenced

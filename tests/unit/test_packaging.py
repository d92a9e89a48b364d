"""What ships and what imports what: the core without Airflow, the emulator behind its extra, ``py.typed``.

Each import runs in a fresh interpreter with the missing distribution blocked in ``sys.modules`` (an entry of
``None`` makes ``import`` fail exactly as if it were not installed), so the check does not depend on this venv.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import airflow_backup_provider


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_core_imports_without_airflow_or_an_http_client() -> None:
    blocked = ("airflow", "requests", "aiohttp", "yarl", "azure", "urllib3")
    result = run_python(
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import airflow_backup_provider.core as core\n"
        "import airflow_backup_provider.core.errors as errors\n"
        "assert not any(c.__module__.startswith('airflow.') for c in errors.AzureBackupError.__mro__)\n"
        "print(len(core.__all__))\n"
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 50


def test_core_errors_are_the_airflow_types_once_the_edge_is_loaded() -> None:
    result = run_python(
        "from airflow.providers.common.compat.sdk import AirflowException\n"
        "import airflow_backup_provider.exceptions as edge\n"
        "from airflow_backup_provider.core import api\n"
        "try:\n"
        "    api.require_name('vault_name', 'a/b')\n"
        "except edge.AzureBackupConfigError as exc:\n"
        "    assert isinstance(exc, AirflowException) and isinstance(exc, ValueError), type(exc).__mro__\n"
        "    print(type(exc).__module__)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "airflow_backup_provider.exceptions"


def test_emulator_without_its_extra_names_the_extra() -> None:
    result = run_python("import sys\nsys.modules['trustme'] = None\nimport airflow_backup_provider.emulator\n")
    assert result.returncode != 0
    assert "ImportError: airflow_backup_provider.emulator needs trustme" in result.stderr
    assert "pip install 'airflow-backup-provider[emulator]'" in result.stderr


def test_package_ships_py_typed() -> None:
    assert (Path(airflow_backup_provider.__file__).parent / "py.typed").is_file()


ASYNC_STACK = ("aiohttp", "yarl", "azure.identity.aio")


def test_sync_path_does_not_load_the_async_stack_and_the_trigger_module_does() -> None:
    result = run_python(
        "import sys\n"
        "import airflow_backup_provider.sensors.backup, airflow_backup_provider.operators.backup\n"
        "import airflow_backup_provider.hooks.backup\n"
        f"print(sorted(m for m in {ASYNC_STACK!r} if m in sys.modules))\n"
        "import airflow_backup_provider.triggers.backup\n"
        f"print(sorted(m for m in {ASYNC_STACK!r} if m in sys.modules))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", str(sorted(ASYNC_STACK))]


def test_async_hook_has_no_blocking_api_method() -> None:
    from airflow_backup_provider.hooks.backup import AzureBackupAsyncHook, AzureBackupHook

    blocking = {"run", "get_token", "get_job", "list_jobs", "cancel_job", "wait_for_job", "trigger_backup", "close"}
    assert blocking <= set(dir(AzureBackupHook))
    assert not blocking & set(dir(AzureBackupAsyncHook))
    assert {"arun", "aget_token", "aget_job", "alist_jobs", "acancel_job", "await_job", "aclose"} <= set(
        dir(AzureBackupAsyncHook)
    )

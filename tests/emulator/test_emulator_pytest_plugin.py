"""The pytest plugin is opt-in: a user's test session gets the fixtures only with the ``pytest_plugins`` line."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

USER_TEST = """
from airflow_backup_provider.emulator import VM_ITEM


def test_uses_the_emulator(azure_backup_emulator):
    import os
    import requests

    assert os.environ["SSL_CERT_FILE"] == azure_backup_emulator.ca_bundle
    assert requests.get(azure_backup_emulator.base_url + "/_emulator/health").json()["status"] == "ok"
    azure_backup_emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed")
"""


def _run(project: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        check=False, capture_output=True, text=True, timeout=120, cwd=project, env=env,
    )  # fmt: skip


def test_fixtures_only_with_the_conftest_line(tmp_path: pathlib.Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TEST)
    without = _run(tmp_path)
    assert without.returncode == 1
    assert "fixture 'azure_backup_emulator' not found" in without.stdout
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["airflow_backup_provider.emulator.pytest_plugin"]\n')
    with_line = _run(tmp_path)
    assert with_line.returncode == 0, with_line.stdout + with_line.stderr
    assert "1 passed" in with_line.stdout

"""Test-wide setup. Airflow reads its configuration at first import, so the environment is set here, first."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import tempfile

HERE = pathlib.Path(__file__).parent
REPO = HERE.parent
_HOME = tempfile.mkdtemp(prefix="airflow-backup-tests-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
# The example DAGs poll every 60 s by default; the emulator's backups take seconds.
os.environ["AZURE_BACKUP_EXAMPLE_POKE_INTERVAL"] = "1"
if importlib.metadata.version("apache-airflow").startswith("2."):
    # Airflow 2 refuses LocalExecutor on SQLite.
    os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"

SPEC_DIR = HERE / "spec"
EXAMPLES_DIR = SPEC_DIR / "examples"


import pytest  # noqa: E402

pytest_plugins = ["airflow_backup_provider.emulator.pytest_plugin"]


class RecordingTI:
    """The two TaskInstance calls the operators make (``xcom_push`` / ``xcom_pull``), recorded for assertions."""

    def __init__(self, task_id: str = "task", try_number: int = 1) -> None:
        self.task_id = task_id
        self.try_number = try_number
        self.xcom: dict[str, object] = {}
        self.state = None
        self.stats_tags: dict[str, str] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> object:
        return self.xcom.get(key)


class DictTaskStateStore:
    """Stand-in for Airflow 3.3's task state store: what survives from one try of a task to the next."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}

    def get(self, key: str) -> object:
        return self.data.get(key)

    def set(self, key: str, value: object) -> None:
        self.data[key] = value


@pytest.fixture
def emulator(azure_backup_emulator):  # type: ignore[no-untyped-def]
    """The emulator, reset, with ``Retry-After: 0`` on 202s so operation polls do not sleep a second each."""
    azure_backup_emulator.configure(retry_after=0, job_page_size=200)
    return azure_backup_emulator


@pytest.fixture
def task_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """All log text so far: stdlib logging (caplog) and Airflow 3's structlog task loggers (written to stdout)."""
    caplog.set_level("INFO")

    def read() -> str:
        out, err = capfd.readouterr()
        read.text += out + err  # type: ignore[attr-defined]
        return caplog.text + read.text  # type: ignore[attr-defined]

    read.text = ""  # type: ignore[attr-defined]
    return read


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh metadata DB (SQLite in the temporary AIRFLOW_HOME) for tests that run DAGs."""
    from airflow.utils import db

    db.resetdb()

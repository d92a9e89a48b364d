"""pytest plugin for testing your own DAGs against the bundled Azure Backup emulator.

Enable it with one line in the ``conftest.py`` at the root of your project (the directory you run pytest from)::

    pytest_plugins = ["airflow_backup_provider.testing"]

It also loads the emulator's plugin (:mod:`airflow_backup_provider.emulator.pytest_plugin`: the
``azure_backup_emulator`` fixture, which resets the emulator and sets the connection and CA variables), and

- in ``pytest_configure`` — before anything imports Airflow — points Airflow at an isolated, throwaway
  ``AIRFLOW_HOME`` with a SQLite metadata DB in it, your dags folder, ``[core] load_examples = False`` and
  ``dags_are_paused_at_creation = False`` (and ``SequentialExecutor`` on Airflow 2, which refuses LocalExecutor on
  SQLite);
- gives the fixtures ``airflow_home`` and ``dags_folder`` (session; paths), ``airflow_db`` (session; the metadata DB,
  migrated once), and ``load_dag`` (a function returning a DAG of the dags folder by its id, with the DB ready).

**Airflow reads its configuration once, when it is first imported.** So nothing may import Airflow before this
plugin is configured: do not import ``airflow`` (or your DAG modules) at the top of ``conftest.py``; import them in
tests or fixtures. A session where Airflow was already imported stops with a message saying so.

The dags folder is, in this order: the ``azure_backup_dags_folder`` ini option (relative to the rootdir), the
``AIRFLOW__CORE__DAGS_FOLDER`` environment variable, ``<rootdir>/dags``. ``dag.test()`` on Airflow 3 runs only DAGs
of that folder (it syncs the folder's DAG bundle), so keep the DAGs under test there. Set
``azure_backup_isolate = false`` to keep your own ``AIRFLOW_HOME`` and ``AIRFLOW__*`` settings untouched.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

pytest_plugins = ["airflow_backup_provider.emulator.pytest_plugin"]

DAGS_FOLDER_INI = "azure_backup_dags_folder"
ISOLATE_INI = "azure_backup_isolate"

_STASH_HOME = pytest.StashKey[pathlib.Path]()
_STASH_DAGS = pytest.StashKey[pathlib.Path]()
_STASH_CREATED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(DAGS_FOLDER_INI, "Folder of the DAGs under test (relative to the rootdir); default <rootdir>/dags")
    parser.addini(
        ISOLATE_INI,
        "Point Airflow at a throwaway AIRFLOW_HOME + SQLite DB (default true)",
        type="bool",
        default=True,
    )


def _dags_folder(config: pytest.Config) -> pathlib.Path:
    configured = config.getini(DAGS_FOLDER_INI)
    if configured:
        return (config.rootpath / str(configured)).resolve()
    if os.environ.get("AIRFLOW__CORE__DAGS_FOLDER"):
        return pathlib.Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).resolve()
    return (config.rootpath / "dags").resolve()


def airflow_environment(home: pathlib.Path, dags_folder: pathlib.Path) -> dict[str, str]:
    """The variables that make Airflow use ``home``, a SQLite DB in it and ``dags_folder``.

    :param home: the ``AIRFLOW_HOME`` to use.
    :param dags_folder: the folder of the DAGs under test.
    """
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    if importlib.metadata.version("apache-airflow").startswith("2."):
        env["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"  # Airflow 2 refuses LocalExecutor on SQLite
    return env


def pytest_configure(config: pytest.Config) -> None:
    dags_folder = _dags_folder(config)
    config.stash[_STASH_DAGS] = dags_folder
    if not config.getini(ISOLATE_INI):
        config.stash[_STASH_HOME] = pathlib.Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
        config.stash[_STASH_CREATED] = False
        return
    if "airflow.configuration" in sys.modules:
        raise pytest.UsageError(
            "airflow_backup_provider.testing: Airflow was imported before the plugin could configure it (Airflow "
            "reads its configuration at first import). Do not import airflow or DAG modules at the top of "
            "conftest.py; import them inside tests or fixtures."
        )
    home = pathlib.Path(tempfile.mkdtemp(prefix="airflow-home-"))
    config.stash[_STASH_HOME] = home
    config.stash[_STASH_CREATED] = True
    os.environ.update(airflow_environment(home, dags_folder))


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_STASH_CREATED, False):
        shutil.rmtree(config.stash[_STASH_HOME], ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home(pytestconfig: pytest.Config) -> pathlib.Path:
    """The ``AIRFLOW_HOME`` of this session (a throwaway directory unless ``azure_backup_isolate = false``)."""
    return pytestconfig.stash[_STASH_HOME]


@pytest.fixture(scope="session")
def dags_folder(pytestconfig: pytest.Config) -> pathlib.Path:
    """The folder of the DAGs under test (``azure_backup_dags_folder`` ini option, else ``<rootdir>/dags``)."""
    return pytestconfig.stash[_STASH_DAGS]


@pytest.fixture(scope="session")
def airflow_db(airflow_home: pathlib.Path) -> None:
    """The metadata DB, created and migrated once per session (it lives in the throwaway ``AIRFLOW_HOME``)."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def load_dag(airflow_db: None, dags_folder: pathlib.Path) -> Callable[[str], Any]:
    """A function ``load_dag(dag_id)`` returning that DAG, parsed from the dags folder (import errors fail)."""

    def load(dag_id: str) -> Any:
        from airflow.models import DagBag

        bag = DagBag(dag_folder=str(dags_folder))
        if bag.import_errors:
            raise AssertionError(f"DAG import errors in {dags_folder}: {bag.import_errors}")
        dag = bag.dags.get(dag_id)
        if dag is None:
            raise AssertionError(f"no DAG {dag_id!r} in {dags_folder}; found {sorted(bag.dags)}")
        return dag

    return load


__all__ = ["airflow_environment"]

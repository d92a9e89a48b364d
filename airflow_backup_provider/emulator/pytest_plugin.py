"""pytest fixtures around the Azure Backup emulator (no Airflow imports; cheap to load).

Opt-in: nothing loads it unless a ``conftest.py`` says
``pytest_plugins = ["airflow_backup_provider.emulator.pytest_plugin"]``.

- ``azure_backup_emulator_session`` (session): one running :class:`Emulator` with ``time_scale`` 600, so the default
  20-minute virtual backup takes 2 s; the CA lives in a pytest temp dir.
- ``azure_backup_emulator`` (function): the same emulator reset to its seed, with ``AIRFLOW_CONN_AZURE_BACKUP_DEFAULT``,
  ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE`` set through ``monkeypatch``.

aiohttp builds its default verifying SSLContext when it is *imported*, so ``SSL_CERT_FILE`` set later does not reach
it. When aiohttp is already imported, the function fixture therefore also adds the emulator CA to that cached context
(trust is only ever added, and the CA's key is thrown away with the process).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from .config import EmulatorConfig
from .facade import Emulator

SESSION_TIME_SCALE = 600.0


@pytest.fixture(scope="session")
def azure_backup_emulator_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    ca_dir = tmp_path_factory.mktemp("azure-backup-emulator")
    emulator = Emulator(EmulatorConfig(port=0, time_scale=SESSION_TIME_SCALE), ca_file=ca_dir / "ca.pem").start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def azure_backup_emulator(
    azure_backup_emulator_session: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Emulator]:
    emulator = azure_backup_emulator_session
    emulator.reset()
    for name, value in emulator.client_env().items():
        monkeypatch.setenv(name, value)
    _trust_ca_in_imported_aiohttp(emulator.ca_file)
    yield emulator
    emulator.clear_faults()


_TRUSTED: set[tuple[int, str]] = set()


def _trust_ca_in_imported_aiohttp(ca_file: str) -> None:
    connector = sys.modules.get("aiohttp.connector")
    context = getattr(connector, "_SSL_CONTEXT_VERIFIED", None) if connector is not None else None
    if context is not None and (id(context), ca_file) not in _TRUSTED:
        context.load_verify_locations(cafile=ca_file)
        _TRUSTED.add((id(context), ca_file))

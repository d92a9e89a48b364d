"""The :class:`Emulator` facade: lifecycle (CA, bind, serve), client settings and the steering / observation API."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
import ssl
import tempfile
import threading
from types import TracebackType
from typing import Any

from .app import EmulatorApp
from .config import (
    CLIENT_ID,
    CLIENT_SECRET,
    CONN_TYPE,
    DEFAULT_CONN_ID,
    RESOURCE_GROUP,
    SUBSCRIPTION_ID,
    TENANT_ID,
    VAULT_NAME,
    EmulatorConfig,
    Fault,
    JobView,
    RecordedRequest,
    SeededItem,
)
from .server import EmulatorServer
from .tls import (
    DEFAULT_HOSTS,
    ServerCredentials,
    client_ssl_context,
    generate_credentials,
    server_ssl_context,
    write_ca_bundle,
    write_ca_file,
)

log = logging.getLogger(__name__)


class Emulator:
    """Entra ID token endpoint + Azure Backup (Recovery Services) ARM API over HTTPS on 127.0.0.1.

    >>> emu = Emulator(EmulatorConfig(time_scale=600)).start()
    >>> emu.base_url, emu.ca_file                       # doctest: +SKIP
    >>> emu.stop()
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        """
        :param config: the settings (default :class:`EmulatorConfig`).
        :param ca_file: where to write the throwaway CA certificate (default: a temporary directory).
        :param ca_bundle: where to write the system CAs plus that CA, for ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE``
            (default: ``<ca_file without .pem>-bundle.pem``).
        """
        self._config = config or EmulatorConfig()
        self._config.validate()
        self._ca_target = os.fspath(ca_file) if ca_file is not None else None
        self._bundle_target = os.fspath(ca_bundle) if ca_bundle is not None else None
        self._tmpdir: str | None = None
        self._ca_file: str | None = None
        self._ca_bundle: str | None = None
        self._credentials: ServerCredentials | None = None
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self.app = EmulatorApp(self._config)

    # ---- lifecycle ---------------------------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Generate the CA, bind, write the CA file and bundle, and serve in a daemon thread. Returns ``self``.

        :raises OSError: when the address cannot be bound; for a busy port (``errno.EADDRINUSE``) the message names
            it and suggests ``--port 0`` / ``port=0``, which picks a free one.
        """
        if self._server is not None:
            raise RuntimeError("emulator already started")
        host = self._config.host
        hosts = DEFAULT_HOSTS + ((host,) if host not in (*DEFAULT_HOSTS, "0.0.0.0", "") else ())
        self._credentials = generate_credentials(hosts)
        try:
            server = EmulatorServer((host, self._config.port), self.app, server_ssl_context(self._credentials))
        except OSError as error:
            where = f"{host}:{self._config.port}"
            if error.errno == errno.EADDRINUSE:
                raise OSError(
                    errno.EADDRINUSE,
                    f"port {self._config.port} on {host} is already in use; choose another with --port N "
                    "(EmulatorConfig(port=N)), or --port 0 to pick a free one",
                ) from None
            raise OSError(error.errno, f"cannot listen on {where}: {error.strerror or error}") from None
        self._server = server
        if self._ca_target is None:
            self._tmpdir = tempfile.mkdtemp(prefix="azure-backup-emulator-")
            self._ca_target = os.path.join(self._tmpdir, "ca.pem")
        self._ca_file = write_ca_file(self._credentials, self._ca_target)
        bundle = self._bundle_target or os.path.splitext(self._ca_file)[0] + "-bundle.pem"
        self._ca_bundle = write_ca_bundle(self._credentials, bundle)
        port = self._server.server_address[1]
        public_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.app.base_url = f"https://{public_host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="azure-backup-emulator", daemon=True
        )
        self._thread.start()
        log.info("Azure Backup emulator serving at %s (CA: %s)", self.app.base_url, self._ca_file)
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent). A temp dir made for the CA is removed."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self._ca_target = None  # a restart writes a new CA (and bundle) to a new temp dir

    def __enter__(self) -> Emulator:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # ---- addresses and client settings -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT`` — both the ARM endpoint and the authority host."""
        if not self.app.base_url:
            raise RuntimeError("emulator not started")
        return self.app.base_url

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def ca_file(self) -> str:
        """Path of the CA certificate PEM clients must trust."""
        if self._ca_file is None:
            raise RuntimeError("emulator not started")
        return self._ca_file

    @property
    def ca_bundle(self) -> str:
        """Path of the combined bundle: the system CAs (the OpenSSL default file, else ``certifi``) plus the emulator
        CA. :meth:`client_env` points ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` at it, so other HTTPS calls of the
        same process (a Slack notifier, a package index) still verify."""
        if self._ca_bundle is None:
            raise RuntimeError("emulator not started")
        return self._ca_bundle

    @property
    def config(self) -> EmulatorConfig:
        """The settings in force (a copy: change them with :meth:`configure`)."""
        return dataclasses.replace(self.app.config)

    @property
    def vault_id(self) -> str:
        """ARM id of the seeded vault: ``/subscriptions/.../vaults/vault-demo``."""
        return self.app.vault_id

    @property
    def vault_url(self) -> str:
        return self.base_url + self.vault_id

    def item_url(self, item: SeededItem, vault: str | None = None) -> str:
        """Absolute URL of a protected item (names unquoted, as the service prints them).

        :param vault: the item's vault (``name`` or ``resource_group/name``); default the seeded one.
        """
        base = self.vault_url if vault is None else self.vault_url_of(vault)
        return (
            f"{base}/backupFabrics/{item.fabric_name}/protectionContainers/{item.container_name}"
            f"/protectedItems/{item.protected_item_name}"
        )

    def ssl_context(self) -> ssl.SSLContext:
        """A client SSLContext trusting only the emulator CA (for aiohttp ``ssl=`` and the like)."""
        return client_ssl_context(self.ca_file)

    def connection_extra(self) -> dict[str, str]:
        return {
            "tenant_id": TENANT_ID,
            "subscription_id": SUBSCRIPTION_ID,
            "resource_group_name": RESOURCE_GROUP,
            "vault_name": VAULT_NAME,
            "resource_manager_endpoint": self.base_url,
            "authority_host": self.base_url,
        }

    def connection_json(self) -> str:
        """Airflow's JSON connection form (value of ``AIRFLOW_CONN_<ID>``), compact so it is one shell word."""
        payload = {
            "conn_type": CONN_TYPE,
            "login": CLIENT_ID,
            "password": CLIENT_SECRET,
            "extra": self.connection_extra(),
        }
        return json.dumps(payload, separators=(",", ":"))

    def client_env(self, conn_id: str = DEFAULT_CONN_ID) -> dict[str, str]:
        """Environment for a client process: the Airflow connection and the CA trust variables (the combined
        :attr:`ca_bundle`, so the process trusts the emulator *and* the usual public CAs)."""
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(),
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "SSL_CERT_FILE": self.ca_bundle,
        }

    # ---- steering ----------------------------------------------------------------------------------------------------

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change settings at run time (e.g. ``job_page_size=2``); :meth:`reset` restores the original ones."""
        return self.app.configure(**changes)

    def set_item_behavior(
        self,
        protected_item_name: str,
        outcome: str = "Completed",
        duration_seconds: float = 1200.0,
        *,
        vault: str | None = None,
    ) -> None:
        """How the item's next backup/restore jobs end and how many *virtual* seconds they run.

        :param vault: the item's vault (``name`` or ``resource_group/name``); default the seeded one.
        """
        self.app.set_item_behavior(protected_item_name, outcome, duration_seconds, vault)

    # ---- fleet -------------------------------------------------------------------------------------------------------

    def add_vault(self, resource_group: str, name: str) -> str:
        """Create an empty vault (and its resource group) in the emulated subscription; returns its ARM id.
        :meth:`reset` removes it again (the seed is what :class:`EmulatorConfig` says).

        :param resource_group: the vault's resource group.
        :param name: the vault's name.
        :raises ValueError: for an existing vault or an invalid name.
        """
        return self.app.add_vault(resource_group, name)

    def add_item(
        self,
        vault: str,
        kind: str,
        name: str,
        *,
        health: str = "healthy",
        resource_group: str | None = None,
        source_resource_group: str = "rg-fleet",
        storage_account: str = "stfleet01",
        server: str | None = None,
    ) -> SeededItem:
        """Protect a new item, shaped and named as the service does for its workload, with matching job history.

        :param vault: the vault: ``name`` (unique in the subscription) or ``resource_group/name``.
        :param kind: ``VM``, ``AzureFileShare`` or ``SQLDataBase`` (aliases: ``vm``, ``file_share``, ``sql``, or the
            backup management type ``AzureIaasVM`` / ``AzureStorage`` / ``AzureWorkload``).
        :param name: the friendly name (VM, share or database name).
        :param health: ``healthy`` (backed up 6 h ago), ``stale`` (3 days ago), ``never`` (IRPending, the
            ``2001-01-01`` lastBackupTime sentinel), ``failed`` (the last backup job failed) or ``stopped``
            (``protectionState: ProtectionStopped``).
        :param resource_group: the vault's resource group, when ``vault`` is a bare name.
        :param source_resource_group: resource group of the protected VM / storage account.
        :param storage_account: a file share's storage account.
        :param server: a SQL database's server VM (default ``vm-sql-{name}``).
        :returns: the item's names, usable with :meth:`item_url` and the operators.
        """
        return self.app.add_item(
            vault,
            kind,
            name,
            health=health,
            resource_group=resource_group,
            source_resource_group=source_resource_group,
            storage_account=storage_account,
            server=server,
        )

    def seed_health_states(self, vault: str = VAULT_NAME) -> dict[str, SeededItem]:
        """Add one item per unhealthy state a nightly check must report: ``stale`` (VM ``vm-stale``, last backup 3
        days ago), ``never`` (VM ``vm-never``, never backed up), ``failed`` (file share ``share-failed``, last job
        Failed), ``stopped`` (SQL ``db-stopped``, ProtectionStopped). Returns their names by state.

        :param vault: the vault (``name`` or ``resource_group/name``).
        """
        return self.app.seed_health_states(vault)

    @property
    def vaults(self) -> list[dict[str, Any]]:
        """Every vault: ``resource_group``, ``name``, ``id``, ``items``, ``jobs``, ``active_jobs``."""
        return self.app.vault_summaries()

    def vault_url_of(self, vault: str) -> str:
        """Absolute URL of a vault (``name`` or ``resource_group/name``)."""
        return self.base_url + self.app.resolve_vault(vault).vault_path

    def finish_job(self, job_id: str, outcome: str = "Completed") -> JobView:
        """End a running job now (e.g. one of the ``--jobs`` load jobs) with ``outcome``."""
        return self.app.finish_job(job_id, outcome)

    def add_fault(self, fault: Fault) -> str:
        """Arm a fault; returns its id (visible in ``faults``)."""
        return self.app.add_fault(fault)

    def clear_faults(self) -> None:
        self.app.clear_faults()

    @property
    def faults(self) -> list[dict[str, Any]]:
        """Armed faults with their remaining counts."""
        return self.app.armed_faults()

    def reset(self) -> None:
        """Back to the seed: items, jobs, recovery points, operations, faults, request log, tokens, configuration."""
        self.app.reset()

    def issue_token(self, lifetime: int | None = None) -> str:
        """An access token the ARM side accepts, minted without the token endpoint (not recorded)."""
        return self.app.issue_token(lifetime)

    # ---- observation ------------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the request log (oldest first); secrets redacted."""
        return self.app.requests_snapshot()

    def clear_requests(self) -> None:
        self.app.clear_requests()

    @property
    def jobs(self) -> list[JobView]:
        """Snapshot of all jobs, newest first, with their current status."""
        return self.app.job_views()

    def job(self, job_id: str) -> JobView:
        """One job (of any vault) with its current status.

        :raises KeyError: for an unknown job.
        """
        return self.app.job_view(job_id)


__all__ = ["Emulator"]

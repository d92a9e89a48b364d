"""The emulator's application, independent of sockets: it dispatches a request to Entra ID (:mod:`.entra`), the ARM
API (:mod:`.arm`) or the admin API (:mod:`.admin.routes`), keeps the request log, and offers the steering calls the
:class:`~.facade.Emulator` facade exposes.

:meth:`EmulatorApp.handle` takes an :class:`~.wire.HttpRequest` and returns an :class:`~.wire.HttpResponse` (or one
marked ``abort`` for the connection-reset faults). There is no application-wide lock around a request: each part has
its own small lock, and an ARM request holds the lock of the one vault it names.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
from typing import Any, cast
from urllib.parse import parse_qs

from airflow_backup_provider.emulator.admin.routes import ADMIN_PREFIX, handle_admin
from airflow_backup_provider.emulator.arm import ArmService
from airflow_backup_provider.emulator.config import (
    JOB_OUTCOMES,
    RESOURCE_GROUP,
    VAULT_NAME,
    EmulatorConfig,
    Fault,
    JobOutcome,
    JobView,
    RecordedRequest,
    SeededItem,
)
from airflow_backup_provider.emulator.entra import Entra, token_hash
from airflow_backup_provider.emulator.faults import FaultBook
from airflow_backup_provider.emulator.seed import make_seed, seed_fleet, seed_health_states, seed_item
from airflow_backup_provider.emulator.state import Fleet, VaultState, utc_now
from airflow_backup_provider.emulator.wire import HttpRequest, HttpResponse, Target, parse_target

REDACTED = "<redacted>"
SECRET_FORM_FIELDS = frozenset({"client_secret", "client_assertion", "password", "refresh_token", "assertion"})


class RequestLog:
    """The newest ``limit`` recorded requests (a bounded deque: appending is O(1))."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[RecordedRequest] = collections.deque(maxlen=limit)

    def append(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def resize(self, limit: int) -> None:
        with self._lock:
            if self._entries.maxlen != limit:
                self._entries = collections.deque(self._entries, maxlen=limit)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class EmulatorApp:
    """All behaviour of the emulator. ``base_url`` is set by the server once the port is known."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.initial_config = dataclasses.replace(config)
        self.config = config  # replaced as a whole by configure(): readers see one consistent object
        self._config_lock = threading.Lock()
        self.base_url = ""  # "https://127.0.0.1:PORT", set by the server once bound
        self.entra = Entra(self)
        self.faults = FaultBook()
        self.log = RequestLog(config.max_recorded_requests)
        self.fleet = self._seed()
        self.arm = ArmService(self)

    def _seed(self) -> Fleet:
        fleet = Fleet(self.config.location)
        seed_fleet(fleet, self.config, utc_now())
        return fleet

    # ---- identity ----------------------------------------------------------------------------------------------------

    @property
    def vault(self) -> VaultState:
        """The seeded vault (``rg-backup-demo/vault-demo``)."""
        vault = self.fleet.vault(RESOURCE_GROUP, VAULT_NAME)
        assert vault is not None
        return vault

    @property
    def vault_id(self) -> str:
        return self.vault.vault_path

    # ---- steering (Python API, called by Emulator and the admin routes) ---------------------------------------------

    def reset(self) -> None:
        """Back to the seed: vaults, items, jobs, faults, request log, tokens, configuration."""
        with self._config_lock:
            self.config = dataclasses.replace(self.initial_config)
            self.faults.clear()
            self.log.resize(self.config.max_recorded_requests)
            self.log.clear()
            self.entra.reset()
            self.arm.reset_budget()
            self.fleet = self._seed()

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change settings at run time (host/port excluded). ``reset()`` restores the original configuration."""
        with self._config_lock:
            unknown = set(changes) - EmulatorConfig.field_names()
            if unknown:
                raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
            if {"host", "port"} & set(changes):
                raise ValueError("host and port cannot change while the emulator runs")
            seeds = EmulatorConfig.SEED_FIELDS & set(changes)
            if seeds:
                raise ValueError(
                    f"{', '.join(sorted(seeds))}: seed settings apply at start (EmulatorConfig) and on reset; "
                    "use add_vault / add_item to grow the fleet at run time"
                )
            candidate = dataclasses.replace(self.config, **changes)  # validates
            self.config = candidate
            self.log.resize(candidate.max_recorded_requests)
            return dataclasses.replace(candidate)

    def add_fault(self, fault: Fault) -> str:
        return self.faults.add(fault, self.fleet.last_seq)

    def clear_faults(self) -> None:
        self.faults.clear()

    def armed_faults(self) -> list[dict[str, Any]]:
        return self.faults.armed()

    def set_item_behavior(
        self, protected_item_name: str, outcome: str, duration_seconds: float, vault_name: str | None = None
    ) -> None:
        """How the item's next backup/restore jobs end and how many virtual seconds they run.

        :raises KeyError: for an unknown item (or vault).
        """
        if outcome not in JOB_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(JOB_OUTCOMES)}")
        if duration_seconds < 0:
            raise ValueError("duration_seconds must be >= 0")
        vault = self.vault if vault_name is None else self.resolve_vault(vault_name)
        item = vault.item_by_name(protected_item_name)
        if item is None:
            raise KeyError(protected_item_name)
        with vault.lock:
            item.behavior.outcome = cast(JobOutcome, outcome)
            item.behavior.duration_seconds = float(duration_seconds)

    # ---- fleet ------------------------------------------------------------------------------------------------------

    def resolve_vault(self, vault: str, resource_group: str | None = None) -> VaultState:
        """The vault ``vault`` names: ``"name"`` (unique across resource groups) or ``"resource_group/name"``.

        :param vault: the vault's name, or ``resource_group/name``.
        :param resource_group: its resource group, when not part of ``vault``.
        :raises KeyError: for an unknown vault; ValueError when a bare name is ambiguous.
        """
        if "/" in vault:
            resource_group, _, vault = vault.partition("/")
        if resource_group is not None:
            found = self.fleet.vault(resource_group, vault)
            if found is None:
                raise KeyError(f"{resource_group}/{vault}")
            return found
        matches = [v for v in self.fleet.all_vaults() if v.vault_name.lower() == vault.lower()]
        if not matches:
            raise KeyError(vault)
        if len(matches) > 1:
            raise ValueError(f"vault name {vault!r} exists in several resource groups; pass resource_group/name")
        return matches[0]

    def add_vault(self, resource_group: str, name: str) -> str:
        """Create an empty vault (its resource group too); returns its ARM id."""
        return self.fleet.add_vault(resource_group, name).vault_path

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
        """Protect a new item in ``vault`` (see :meth:`.facade.Emulator.add_item`)."""
        target = self.resolve_vault(vault, resource_group)
        seed = make_seed(
            kind, name, resource_group=source_resource_group, storage_account=storage_account, server=server
        )
        with target.lock:
            seed_item(target, seed, utc_now(), health)
        return seed

    def seed_health_states(self, vault: str = VAULT_NAME, resource_group: str | None = None) -> dict[str, SeededItem]:
        """Add the stale / never / failed / stopped items to ``vault``; returns their names by state."""
        target = self.resolve_vault(vault, resource_group)
        with target.lock:
            return seed_health_states(target, utc_now())

    def vault_summaries(self) -> list[dict[str, Any]]:
        """Every vault with its item and job counts."""
        out = []
        for vault in self.fleet.all_vaults():
            with vault.lock:
                vault.advance(utc_now())
                out.append(
                    {
                        "resource_group": vault.resource_group,
                        "name": vault.vault_name,
                        "id": vault.vault_path,
                        "items": len(vault.items),
                        "jobs": vault.job_count,
                        "active_jobs": vault.active_job_count,
                    }
                )
        return out

    def job_view(self, job_id: str) -> JobView:
        """One job of any vault, current status.

        :raises KeyError: for an unknown job.
        """
        found = self.fleet.find_job(job_id)
        if found is None:
            raise KeyError(job_id)
        vault, job = found
        with vault.lock:
            vault.advance(utc_now())
            return job.view()

    def finish_job(self, job_id: str, outcome: str = "Completed") -> JobView:
        """End a running job now with ``outcome`` (Completed / CompletedWithWarnings / Failed).

        :raises KeyError: for an unknown job; ValueError for a bad outcome.
        """
        if outcome not in JOB_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(JOB_OUTCOMES)}, got {outcome!r}")
        found = self.fleet.find_job(job_id)
        if found is None:
            raise KeyError(job_id)
        vault, job = found
        with vault.lock:
            now = utc_now()
            vault.advance(now)
            vault.finish(job, now, outcome)
            return job.view()

    def requests_snapshot(self) -> list[RecordedRequest]:
        return self.log.snapshot()

    def clear_requests(self) -> None:
        self.log.clear()

    def job_views(self) -> list[JobView]:
        """Every job of every vault, newest first."""
        now = utc_now()
        views: list[tuple[Any, JobView]] = []
        for vault in self.fleet.all_vaults():
            with vault.lock:
                vault.advance(now)
                views.extend((job.key, job.view()) for job in vault.sorted_jobs())
        views.sort(key=lambda pair: pair[0], reverse=True)
        return [view for _, view in views]

    def issue_token(self, lifetime: int | None = None) -> str:
        """Mint an access token directly (tests that exercise ARM without the token endpoint)."""
        return self.entra.issue_token(lifetime)

    # ---- entry point ----------------------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        target = parse_target(request.target)
        lowered = target.path.lower()
        if lowered == ADMIN_PREFIX or lowered.startswith(ADMIN_PREFIX + "/"):
            return handle_admin(self, request, target)
        if target.segments and target.segments[0].lower() in ("subscriptions", "providers"):
            return self.arm.handle(request, target)
        response = self.entra.handle(request, target)
        self.record(request, target, response.status)
        return response

    def record(self, request: HttpRequest, target: Target, status: int) -> None:
        """Append a request to the log, secrets redacted."""
        authorization = request.header("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        has_bearer = scheme.lower() == "bearer" and bool(token.strip())
        headers = {k: (REDACTED if k.lower() in ("authorization", "cookie") else v) for k, v in request.headers}
        self.log.append(
            RecordedRequest(
                method=request.method,
                path=target.path,
                raw_path=target.raw_path,
                query=dict(target.query),
                host=request.header("Host") or "",
                headers=headers,
                body=_redacted_body(request),
                status=status,
                timestamp=utc_now(),
                has_bearer=has_bearer,
                token_sha256=token_hash(token.strip()) if has_bearer else None,
            )
        )


def _redacted_body(request: HttpRequest) -> Any:
    if not request.body:
        return None
    content_type = (request.header("Content-Type") or "").lower()
    text = request.body.decode("utf-8", "replace")
    if "application/x-www-form-urlencoded" in content_type:
        form = {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}
        return {k: (REDACTED if k.lower() in SECRET_FORM_FIELDS else v) for k, v in form.items()}
    try:
        return json.loads(text)
    except ValueError:
        return text


__all__ = ["EmulatorApp", "RequestLog"]

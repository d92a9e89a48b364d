"""Server side of the ``/_emulator/`` admin API (no auth, never faulted, never recorded); :mod:`.client` wraps it.

Routes (JSON in and out): ``GET health``, ``GET|DELETE requests``, ``GET jobs``, ``GET|POST|DELETE faults``,
``POST reset``, ``POST items/behavior``, ``GET|POST config``, ``GET|POST vaults``, ``POST items``,
``POST seed/health-states``, ``POST jobs/{id}/finish``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_backup_provider.emulator.config import Fault
from airflow_backup_provider.emulator.wire import HttpRequest, HttpResponse, Target, json_response

if TYPE_CHECKING:
    from airflow_backup_provider.emulator.app import EmulatorApp

ADMIN_PREFIX = "/_emulator"


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[["EmulatorApp", HttpRequest, dict[str, str]], HttpResponse]


def _json(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body.decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        raise AdminError(400, "body must be JSON") from None
    if not isinstance(data, dict):
        raise AdminError(400, "body must be a JSON object")
    return data


def _health(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    return json_response(200, {"status": "ok", "base_url": app.base_url, "vault_id": app.vault_id})


def _requests(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    return json_response(200, {"value": [r.to_dict() for r in app.requests_snapshot()]})


def _clear_requests(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    app.clear_requests()
    return HttpResponse(204)


def _jobs(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    return json_response(200, {"value": [j.to_dict() for j in app.job_views()]})


def _faults(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    return json_response(200, {"value": app.armed_faults()})


def _add_fault(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    fault = Fault.from_dict(_json(request))
    fault_id = app.add_fault(fault)
    return json_response(201, {"id": fault_id, **fault.to_dict()})


def _clear_faults(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    app.clear_faults()
    return HttpResponse(204)


def _reset(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    app.reset()
    return HttpResponse(204)


def _item_behavior(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    data = _json(request)
    name = data.get("protected_item_name")
    if not isinstance(name, str):
        raise AdminError(400, "protected_item_name is required")
    outcome = str(data.get("outcome", "Completed"))
    duration = float(data.get("duration_seconds", app.config.default_job_duration))
    vault = data.get("vault")
    try:
        app.set_item_behavior(name, outcome, duration, None if vault is None else str(vault))
    except KeyError:
        raise AdminError(404, f"unknown protected item {name!r}") from None
    return json_response(200, {"protected_item_name": name, "outcome": outcome, "duration_seconds": duration})


def _vaults(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    return json_response(200, {"value": app.vault_summaries()})


def _add_vault(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    data = _json(request)
    resource_group, name = data.get("resource_group"), data.get("name")
    if not isinstance(resource_group, str) or not isinstance(name, str):
        raise AdminError(400, "resource_group and name (strings) are required")
    return json_response(201, {"id": app.add_vault(resource_group, name)})


_ITEM_FIELDS = frozenset(
    {"vault", "kind", "name", "health", "resource_group", "source_resource_group", "storage_account", "server"}
)


def _add_item(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    data = _json(request)
    unknown = set(data) - _ITEM_FIELDS
    if unknown:
        raise AdminError(400, f"unknown item field(s): {', '.join(sorted(unknown))}")
    for required in ("vault", "kind", "name"):
        if not isinstance(data.get(required), str):
            raise AdminError(400, f"{required} (a string) is required")
    options = {k: str(v) for k, v in data.items() if k not in ("vault", "kind", "name") and v is not None}
    try:
        seed = app.add_item(data["vault"], data["kind"], data["name"], **options)
    except KeyError as error:
        raise AdminError(404, f"unknown vault {error.args[0]!r}") from None
    return json_response(201, dataclasses.asdict(seed))


def _seed_health_states(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    data = _json(request)
    vault = str(data.get("vault") or "vault-demo")
    try:
        seeds = app.seed_health_states(vault)
    except KeyError:
        raise AdminError(404, f"unknown vault {vault!r}") from None
    return json_response(201, {state: dataclasses.asdict(seed) for state, seed in seeds.items()})


def _finish_job(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    outcome = str(_json(request).get("outcome", "Completed"))
    try:
        view = app.finish_job(params["job"], outcome)
    except KeyError:
        raise AdminError(404, f"unknown job {params['job']!r}") from None
    return json_response(200, view.to_dict())


def _config(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    return json_response(200, dataclasses.asdict(app.config))


def _configure(app: EmulatorApp, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
    return json_response(200, dataclasses.asdict(app.configure(**_json(request))))


ROUTES: tuple[tuple[str, re.Pattern[str], Handler], ...] = tuple(
    (method, re.compile(pattern, re.IGNORECASE), handler)
    for method, pattern, handler in (
        ("GET", r"health", _health),
        ("GET", r"requests", _requests),
        ("DELETE", r"requests", _clear_requests),
        ("GET", r"jobs", _jobs),
        ("GET", r"faults", _faults),
        ("POST", r"faults", _add_fault),
        ("DELETE", r"faults", _clear_faults),
        ("POST", r"reset", _reset),
        ("POST", r"items/behavior", _item_behavior),
        ("GET", r"vaults", _vaults),
        ("POST", r"vaults", _add_vault),
        ("POST", r"items", _add_item),
        ("POST", r"seed/health-states", _seed_health_states),
        ("POST", r"jobs/(?P<job>[^/]+)/finish", _finish_job),
        ("GET", r"config", _config),
        ("POST", r"config", _configure),
    )
)


def handle_admin(app: EmulatorApp, request: HttpRequest, target: Target) -> HttpResponse:
    """Answer one admin request.

    :param app: the application to steer.
    :param request: the request.
    :param target: its parsed target (below ``/_emulator``).
    """
    route = target.path[len(ADMIN_PREFIX) :].strip("/")
    method = request.method.upper()
    try:
        for route_method, pattern, handler in ROUTES:
            found = pattern.fullmatch(route)
            if found is not None and route_method == method:
                return handler(app, request, found.groupdict())
    except (ValueError, TypeError) as error:
        return json_response(400, {"error": str(error)})
    except AdminError as error:
        return json_response(error.status, {"error": error.message})
    return json_response(404, {"error": f"no admin route {method} {target.path}"})


__all__ = ["ADMIN_PREFIX", "AdminError", "handle_admin"]

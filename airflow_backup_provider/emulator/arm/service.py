"""The ARM request pipeline: entry faults, bearer authentication, ``api-version``, vault resolution (with the
service's 404 ladder: subscription, resource group, vault), routing through :mod:`.routes`, the headers every ARM
response carries and the hourly request budget they report.

No global lock is held across a request: faults, tokens, the budget and the request log have their own small locks,
and a handler runs under the lock of the one vault it names.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from airflow_backup_provider.emulator.arm.handlers import ArmContext, ArmHandlers
from airflow_backup_provider.emulator.arm.routes import match
from airflow_backup_provider.emulator.config import TENANT_ID, EmulatorConfig
from airflow_backup_provider.emulator.entra import Entra
from airflow_backup_provider.emulator.faults import ENTRY_FAULTS, FaultBook, fault_response
from airflow_backup_provider.emulator.render import fmt_dotnet_time
from airflow_backup_provider.emulator.state import Fleet, VaultState, utc_now
from airflow_backup_provider.emulator.wire import ArmError, HttpRequest, HttpResponse, Target

READS_PER_HOUR = 12_000
WRITES_PER_HOUR = 1_200
DELETES_PER_HOUR = 15_000


class ArmServiceHost(Protocol):
    base_url: str
    config: EmulatorConfig
    faults: FaultBook
    fleet: Fleet
    entra: Entra

    def record(self, request: HttpRequest, target: Target, status: int) -> None: ...


def _not_found(target: Target) -> ArmError:
    return ArmError(404, "NotFound", f"No HTTP resource was found that matches the request URI '{target.path}'.")


class ArmService:
    """Answers every request below ``/subscriptions`` (and ``/providers``)."""

    def __init__(self, host: ArmServiceHost) -> None:
        self.host = host
        self.handlers = ArmHandlers(host)
        self._budget_lock = threading.Lock()
        self.reset_budget()

    def reset_budget(self) -> None:
        with self._budget_lock:
            self._budget_window = time.monotonic()
            self._budget = {"reads": READS_PER_HOUR, "writes": WRITES_PER_HOUR, "deletes": DELETES_PER_HOUR}

    def handle(self, request: HttpRequest, target: Target) -> HttpResponse:
        """Answer one ARM request (or abort it, for the reset faults).

        :param request: the request.
        :param target: its parsed target.
        """
        host = self.host
        method = request.method.upper()
        fault = host.faults.take(ENTRY_FAULTS, method, target.path)
        correlation = request.header("x-ms-correlation-request-id") or str(uuid.uuid4())
        kind = fault.fault.kind if fault is not None else None
        if fault is not None and kind == "reset":
            host.record(request, target, 0)
            return HttpResponse(0, abort=True)
        if fault is not None and kind in ("throttle", "unavailable"):
            response = fault_response(fault.fault, method)
            self._finish(request, target, response, correlation, exhausted=kind == "throttle")
            return response
        if fault is not None and kind == "slow":
            time.sleep(fault.fault.delay)
        now = utc_now()
        try:
            self._authenticate(request, target)
            if not target.query_lower.get("api-version"):
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            vault, raw_rest = self._resolve_vault(target)
            found = match(method, raw_rest)
            if found is None:
                raise _not_found(target)
            if isinstance(found, str):
                raise ArmError(
                    405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
                )
            handler: Callable[[ArmContext], HttpResponse] = getattr(self.handlers, found.route.handler)
            with vault.lock:
                now = utc_now()
                vault.advance(now)
                response = handler(ArmContext(request, target, now, correlation, vault, found.params))
        except ArmError as error:
            response = error.response()
        if kind == "reset_after":
            # Acted on, but the answer is lost: the client cannot tell whether anything happened.
            host.record(request, target, 0)
            return HttpResponse(0, abort=True)
        if kind == "error_after":
            response = ArmError(
                500, "InternalServerError", "Encountered internal server error. Please try again."
            ).response()
        self._finish(request, target, response, correlation)
        if kind == "truncated":
            # Acted on; the headers arrive, the body does not (all of it): the answer is lost all the same.
            response.truncate = True
        return response

    # ---- steps -------------------------------------------------------------------------------------------------------

    def _resolve_vault(self, target: Target) -> tuple[VaultState, str]:
        """The vault a path names and the raw path below it; the service's 404s for what does not exist."""
        seg = target.segments
        low = [s.lower() for s in seg]
        fleet = self.host.fleet
        if low[0] != "subscriptions" or len(seg) < 2:
            raise _not_found(target)
        if low[1] != fleet.subscription_id:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{seg[1]}' could not be found.")
        if len(seg) < 4 or low[2] != "resourcegroups":
            raise _not_found(target)
        if low[3] not in fleet.resource_groups:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{seg[3]}' could not be found.")
        if len(seg) < 8 or low[4] != "providers" or low[5] != "microsoft.recoveryservices" or low[6] != "vaults":
            raise _not_found(target)
        vault = fleet.vault(seg[3], seg[7])
        if vault is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.RecoveryServices/vaults/{seg[7]}' under resource group '{seg[3]}' was not "
                "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        raw_segments = [s for s in target.raw_path.split("/") if s]
        rest = raw_segments[8:]
        return vault, ("/" + "/".join(rest)) if rest else ""

    def _authenticate(self, request: HttpRequest, target: Target) -> None:
        header = request.header("Authorization")
        if header is None or not header.strip():
            raise _unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                "The authentication failed because of missing 'Authorization' header.",
            )
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                "The authentication failed because of invalid 'Authorization' header format.",
            )
        entra = self.host.entra
        info = entra.lookup(token)
        if info is None:
            raise _unauthorized(
                "InvalidAuthenticationToken", "The access token is invalid.", "The access token is invalid."
            )
        now = utc_now()
        if now < info.expires_at and self.host.faults.take(("token_expiry",), request.method, target.path):
            entra.expire(info, now)  # the token stays expired from now on
        if now >= info.expires_at:
            message = (
                f"The access token expiry UTC time '{fmt_dotnet_time(info.expires_at)}' is earlier than current UTC "
                f"time '{fmt_dotnet_time(now)}'."
            )
            raise _unauthorized("ExpiredAuthenticationToken", message, message)

    def _finish(
        self, request: HttpRequest, target: Target, response: HttpResponse, correlation: str, exhausted: bool = False
    ) -> None:
        """Add the headers every ARM response carries, count the request against the hourly budget, record it."""
        method = request.method.upper()
        kind = "reads" if method in ("GET", "HEAD") else "deletes" if method == "DELETE" else "writes"
        with self._budget_lock:
            if time.monotonic() - self._budget_window > 3600:
                self._budget_window = time.monotonic()
                self._budget = {"reads": READS_PER_HOUR, "writes": WRITES_PER_HOUR, "deletes": DELETES_PER_HOUR}
            self._budget[kind] = max(0, self._budget[kind] - 1)
            remaining = self._budget[kind]
        request_id = str(uuid.uuid4())
        headers = [
            ("Cache-Control", "no-cache"),
            ("Pragma", "no-cache"),
            ("Expires", "-1"),
            ("x-ms-request-id", request_id),
            ("x-ms-correlation-request-id", correlation),
            ("x-ms-routing-request-id", f"WESTEUROPE:{utc_now().strftime('%Y%m%dT%H%M%SZ')}:{request_id}"),
            ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        client_request_id = request.header("x-ms-client-request-id")
        if client_request_id:
            headers.append(("x-ms-client-request-id", client_request_id))
        if response.status != 401:
            headers.append((f"x-ms-ratelimit-remaining-subscription-{kind}", "0" if exhausted else str(remaining)))
        response.headers.extend(headers)
        self.host.record(request, target, response.status)


def _unauthorized(code: str, message: str, description: str) -> ArmError:
    challenge = (
        f'Bearer authorization_uri="https://login.windows.net/{TENANT_ID}", error="invalid_token", '
        f'error_description="{description}"'
    )
    return ArmError(401, code, message, [("WWW-Authenticate", challenge)])


__all__ = ["ArmService"]

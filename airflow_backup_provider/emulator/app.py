"""Request handling of the emulator, independent of sockets: Entra ID token endpoint, ARM backup API, admin API.

:class:`EmulatorApp.handle` takes an :class:`HttpRequest` and returns an :class:`HttpResponse` (or one marked
``abort`` for the connection-reset fault). One re-entrant lock guards all state; only the ``slow`` fault's sleep
happens outside it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from .models import (
    CLIENT_ID,
    CLIENT_SECRET,
    JOB_OUTCOMES,
    TENANT_ID,
    EmulatorConfig,
    Fault,
    JobOutcome,
    JobView,
    RecordedRequest,
)
from .state import (
    BACKUP_REQUEST_TYPE,
    RESTORE_REQUEST_TYPES,
    CancelOperationState,
    ItemState,
    JobState,
    OperationState,
    TokenState,
    VaultState,
    fmt_dotnet_time,
    fmt_time,
    utc_now,
)

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
ADMIN_PREFIX = "/_emulator"
REDACTED = "<redacted>"
SECRET_FORM_FIELDS = frozenset({"client_secret", "client_assertion", "password", "refresh_token", "assertion"})
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
NEXT_LINK_API_VERSION = "2017-07-01"  # the service echoes old api-versions in URLs it hands out (spec examples)
BACKUP_HEADER_API_VERSION = "2016-12-01"
RESTORE_HEADER_API_VERSION = "2017-07-01"
CANCEL_HEADER_API_VERSION = "2017-07-01"
# Audiences the real ARM front door accepts in a bearer token (besides the configured endpoint's own resource);
# `<resource>/.default` and `<resource>//.default` are both valid scopes for each.
ARM_RESOURCES = frozenset({"https://management.azure.com", "https://management.core.windows.net"})
READS_PER_HOUR = 12_000
WRITES_PER_HOUR = 1_200
DELETES_PER_HOUR = 15_000

JOB_STATUS_VALUES = (
    "Invalid",
    "InProgress",
    "Completed",
    "Failed",
    "CompletedWithWarnings",
    "Cancelled",
    "Cancelling",
)
JOB_OPERATION_VALUES = (
    "Invalid",
    "Register",
    "UnRegister",
    "ConfigureBackup",
    "Backup",
    "Restore",
    "DisableBackup",
    "DeleteBackupData",
    "CrossRegionRestore",
    "Undelete",
    "UpdateCustomerManagedKey",
)
BACKUP_MANAGEMENT_TYPES = (
    "Invalid",
    "AzureIaasVM",
    "MAB",
    "DPM",
    "AzureBackupServer",
    "AzureSql",
    "AzureStorage",
    "AzureWorkload",
    "DefaultBackup",
)
BACKUP_TYPES = ("Full", "Differential", "Log", "CopyOnlyFull", "Incremental", "SnapshotFull", "SnapshotCopyOnlyFull")
# Filter fields of the legacy ProtectedItemQueryObject that the emulator accepts but does not filter on.
IGNORED_ITEM_FILTER_FIELDS = frozenset({"healthstate", "backupenginename", "backupsetname"})
# BMSRPQueryObject fields other than the date range: accepted, not applied.
IGNORED_RP_FILTER_FIELDS = frozenset(
    {"restorepointquerytype", "extendedinfo", "movereadyrponly", "includesoftdeletedrp", "targettier"}
)

_CLAUSE = re.compile(r"^\s*([A-Za-z]+)\s+eq\s+'([^']*)'\s*$")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_FILTER_DATE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?\s*(AM|PM)?\s*(?:Z|UTC)?\s*$",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------------------------------
# HTTP value types
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    """A fully read request. ``headers`` keeps the client's spelling; look-ups go through :meth:`header`."""

    method: str
    target: str  # request-target as sent: path plus optional query
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    abort: bool = False  # reset the connection instead of answering

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return HttpResponse(status, [("Content-Type", JSON_CONTENT_TYPE), *(headers or [])], body)


class ArmError(Exception):
    """An ARM error envelope ``{"error": {"code", "message"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []

    def response(self) -> HttpResponse:
        return json_response(self.status, {"error": {"code": self.code, "message": self.message}}, self.headers)


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Target:
    raw_path: str
    path: str
    segments: list[str]  # percent-decoded
    query: dict[str, str]  # last value wins
    query_lower: dict[str, str]  # keys lower-cased ($skipToken vs $skiptoken)


def parse_target(target: str) -> _Target:
    parts = urlsplit(target)
    raw_path = parts.path or "/"
    raw_segments = [s for s in raw_path.split("/") if s]
    segments = [unquote(s) for s in raw_segments]
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return _Target(
        raw_path=raw_path,
        path="/" + "/".join(segments),
        segments=segments,
        query=query,
        query_lower={k.lower(): v for k, v in query.items()},
    )


@dataclass
class _ArmedFault:
    fault: Fault
    fault_id: str
    last_job_seq: int  # newest job when the fault was armed (job_not_found covers only later jobs)
    remaining: int
    per_job: dict[str, int] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        if self.fault.method and self.fault.method.upper() != method.upper():
            return False
        return not (self.fault.path_regex and not re.search(self.fault.path_regex, path, re.IGNORECASE))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.fault_id, "remaining": self.remaining, **self.fault.to_dict()}


@dataclass
class _Context:
    """Per-request facts shared by the ARM handlers."""

    request: HttpRequest
    target: _Target
    now: datetime
    correlation_id: str
    token_hash: str | None = None


# --------------------------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------------------------


class EmulatorApp:
    """All behaviour of the emulator behind one lock. ``base_url`` is set by the server once the port is known."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.lock = threading.RLock()
        self.initial_config = dataclasses.replace(config)
        self.config = config
        self.base_url = ""  # "https://127.0.0.1:PORT", set by the server once bound
        self.state = VaultState(config.time_scale, config.default_job_duration, config.location)
        self.faults: list[_ArmedFault] = []
        self.recorded: list[RecordedRequest] = []
        self._budget_window = time.monotonic()
        self._budget = {"reads": READS_PER_HOUR, "writes": WRITES_PER_HOUR, "deletes": DELETES_PER_HOUR}

    # ---- public (Python API, called by Emulator) -------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.config = dataclasses.replace(self.initial_config)
            self.state = VaultState(self.config.time_scale, self.config.default_job_duration, self.config.location)
            self.faults = []
            self.recorded = []
            self._budget_window = time.monotonic()
            self._budget = {"reads": READS_PER_HOUR, "writes": WRITES_PER_HOUR, "deletes": DELETES_PER_HOUR}

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change settings at run time (host/port excluded). ``reset()`` restores the original configuration."""
        with self.lock:
            unknown = set(changes) - EmulatorConfig.field_names()
            if unknown:
                raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
            if {"host", "port"} & set(changes):
                raise ValueError("host and port cannot change while the emulator runs")
            candidate = dataclasses.replace(self.config, **changes)  # validates
            self.config = candidate
            self.state.time_scale = candidate.time_scale
            self.state.default_job_duration = candidate.default_job_duration
            return dataclasses.replace(candidate)

    def add_fault(self, fault: Fault) -> str:
        with self.lock:
            fault_id = uuid.uuid4().hex[:12]
            last_job_seq = max((job.seq for job in self.state.jobs.values()), default=0)
            self.faults.append(_ArmedFault(dataclasses.replace(fault), fault_id, last_job_seq, fault.count))
            return fault_id

    def clear_faults(self) -> None:
        with self.lock:
            self.faults = []

    def armed_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.to_dict() for f in self.faults]

    def set_item_behavior(self, protected_item_name: str, outcome: str, duration_seconds: float) -> None:
        if outcome not in JOB_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(JOB_OUTCOMES)}")
        if duration_seconds < 0:
            raise ValueError("duration_seconds must be >= 0")
        with self.lock:
            item = self.state.item_by_name(protected_item_name)
            if item is None:
                raise KeyError(protected_item_name)
            item.behavior.outcome = cast(JobOutcome, outcome)
            item.behavior.duration_seconds = float(duration_seconds)

    def requests_snapshot(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.recorded)

    def clear_requests(self) -> None:
        with self.lock:
            self.recorded = []

    def job_views(self) -> list[JobView]:
        with self.lock:
            self.state.advance(utc_now())
            return [job.view() for job in self.state.sorted_jobs()]

    def issue_token(self, lifetime: int | None = None) -> str:
        """Mint an access token directly (tests that exercise ARM without the token endpoint)."""
        with self.lock:
            return self._mint_token(CLIENT_ID, lifetime)[0]

    # ---- entry point ----------------------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        target = parse_target(request.target)
        lowered = target.path.lower()
        if lowered == ADMIN_PREFIX or lowered.startswith(ADMIN_PREFIX + "/"):
            return self._handle_admin(request, target)
        if target.segments and target.segments[0].lower() in ("subscriptions", "providers"):
            return self._handle_arm(request, target)
        with self.lock:
            response = self._handle_entra(request, target)
            self._record(request, target, response.status)
            return response

    # ---- request log -------------------------------------------------------------------------------------------------

    def _record(self, request: HttpRequest, target: _Target, status: int) -> None:
        authorization = request.header("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        has_bearer = scheme.lower() == "bearer" and bool(token.strip())
        headers = {k: (REDACTED if k.lower() in ("authorization", "cookie") else v) for k, v in request.headers}
        entry = RecordedRequest(
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
            token_sha256=_token_hash(token.strip()) if has_bearer else None,
        )
        self.recorded.append(entry)
        overflow = len(self.recorded) - self.config.max_recorded_requests
        if overflow > 0:
            del self.recorded[:overflow]

    # ---- faults ------------------------------------------------------------------------------------------------------

    def _take_fault(self, kinds: tuple[str, ...], method: str, path: str) -> _ArmedFault | None:
        for armed in self.faults:
            if armed.fault.kind in kinds and armed.remaining > 0 and armed.matches(method, path):
                armed.remaining -= 1
                if armed.remaining <= 0:
                    self.faults.remove(armed)
                return armed
        return None

    def _job_not_found_fault(self, method: str, path: str, job: JobState) -> bool:
        """job_not_found: 404 for the first ``count`` GETs of each job it covers; stays armed until cleared."""
        for armed in self.faults:
            if armed.fault.kind != "job_not_found" or not armed.matches(method, path):
                continue
            if armed.fault.path_regex is None and job.seq <= armed.last_job_seq:
                continue  # without a pattern only jobs created after the fault was added are covered
            left = armed.per_job.setdefault(job.job_id, armed.fault.count)
            if left > 0:
                armed.per_job[job.job_id] = left - 1
                return True
        return False

    # ---- URLs --------------------------------------------------------------------------------------------------------

    def _async_base(self, method: str, path: str) -> str:
        """Base URL for Location / Azure-AsyncOperation / nextLink, honouring a foreign_async_host fault."""
        if self._take_fault(("foreign_async_host",), method, path):
            return self._foreign_base()
        return self.base_url

    def _foreign_base(self) -> str:
        parts = urlsplit(self.base_url)
        host = "127.0.0.1" if parts.hostname == "localhost" else "localhost"
        return f"{parts.scheme}://{host}:{parts.port}"

    # ---- Entra ID ----------------------------------------------------------------------------------------------------

    def _handle_entra(self, request: HttpRequest, target: _Target) -> HttpResponse:
        seg = target.segments
        low = [s.lower() for s in seg]
        method = request.method.upper()
        if method == "GET" and low[:3] == ["common", "discovery", "instance"]:
            return self._instance_discovery(target)
        if not seg:
            return _entra_error(404, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests.")
        tenant = seg[0]
        rest = low[1:]
        if rest in (["v2.0", ".well-known", "openid-configuration"], [".well-known", "openid-configuration"]):
            if method != "GET":
                return _entra_error(405, "invalid_request", 900561, "The endpoint only accepts GET requests.")
            if tenant.lower() != TENANT_ID:
                return self._unknown_tenant(tenant)
            return json_response(200, self._openid_configuration(tenant), _entra_headers())
        if rest == ["discovery", "v2.0", "keys"] and method == "GET":
            return json_response(200, {"keys": []}, _entra_headers())
        if rest in (["oauth2", "v2.0", "token"], ["oauth2", "token"]):
            if method != "POST":
                return _entra_error(405, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests.")
            return self._token(request, tenant)
        return _entra_error(404, "invalid_request", 900561, f"The endpoint '{target.path}' is not emulated.")

    def _openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.base_url}/{tenant}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _instance_discovery(self, target: _Target) -> HttpResponse:
        host = urlsplit(self.base_url).netloc
        return json_response(
            200,
            {
                "tenant_discovery_endpoint": f"{self.base_url}/{TENANT_ID}/v2.0/.well-known/openid-configuration",
                "api-version": target.query.get("api-version", "1.1"),
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            },
            _entra_headers(),
        )

    def _unknown_tenant(self, tenant: str) -> HttpResponse:
        return _entra_error(
            400,
            "invalid_tenant" if "." in tenant or len(tenant) == 36 else "invalid_request",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into "
            "the correct cloud. Check with your subscription administrator, this may happen if there are no active "
            "subscriptions for the tenant.",
        )

    def _token(self, request: HttpRequest, tenant: str) -> HttpResponse:
        if tenant.lower() != TENANT_ID:
            return self._unknown_tenant(tenant)
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        basic_id, basic_secret = _basic_credentials(request.header("Authorization"))
        client_id = form.get("client_id") or basic_id
        client_secret = form.get("client_secret") or basic_secret
        grant_type = form.get("grant_type")
        if not grant_type:
            return _entra_error(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."
            )
        if grant_type != "client_credentials":
            return _entra_error(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
            )
        if not client_id:
            return _entra_error(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
            )
        if client_id.lower() != CLIENT_ID:
            return _entra_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen "
                "if the application has not been installed by the administrator of the tenant or consented to by any "
                "user in the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        if not client_secret and not form.get("client_assertion"):
            return _entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        if not secrets.compare_digest(client_secret or "", CLIENT_SECRET):
            return _entra_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        scopes = [s for s in form.get("scope", "").split() if s.lower() not in RESERVED_SCOPES]
        if not scopes:
            return _entra_error(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
            )
        if len(scopes) != 1 or not scopes[0].lower().endswith("/.default"):
            return _entra_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {' '.join(scopes)} is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scopes[0][: -len("/.default")]
        if resource.removesuffix("/").lower() not in self.accepted_resources():
            return _entra_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant}. This can happen "
                "if the application has not been installed by the administrator of the tenant or consented to by any "
                "user in the tenant. You might have sent your authentication request to the wrong tenant.",
            )
        token, lifetime = self._mint_token(client_id, None)
        return json_response(
            200,
            {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token},
            _entra_headers(),
        )

    def accepted_resources(self) -> frozenset[str]:
        """Token audiences ARM accepts (lower case, no trailing slash): the emulator's own endpoint and the public
        ARM resources the SDKs ask for by default."""
        return frozenset({self.base_url.rstrip("/").lower(), *ARM_RESOURCES})

    def _mint_token(self, client_id: str, lifetime: int | None) -> tuple[str, int]:
        seconds = int(lifetime if lifetime is not None else self.config.token_lifetime)
        token = "emu." + secrets.token_urlsafe(32)
        now = utc_now()
        self.state.tokens[token] = TokenState(client_id, now, now + timedelta(seconds=seconds))
        return token, seconds

    # ---- ARM: entry, faults, authentication --------------------------------------------------------------------------

    def _handle_arm(self, request: HttpRequest, target: _Target) -> HttpResponse:
        method = request.method.upper()
        with self.lock:
            fault = self._take_fault(
                ("throttle", "unavailable", "reset", "slow", "reset_after", "error_after"), method, target.path
            )
            correlation = request.header("x-ms-correlation-request-id") or str(uuid.uuid4())
            if fault is not None and fault.fault.kind == "reset":
                self._record(request, target, 0)
                return HttpResponse(0, abort=True)
            if fault is not None and fault.fault.kind in ("throttle", "unavailable"):
                response = self._fault_response(fault.fault, method)
                self._finish_arm(request, target, response, correlation, exhausted=fault.fault.kind == "throttle")
                return response
        if fault is not None and fault.fault.kind == "slow":
            time.sleep(fault.fault.delay)  # outside the lock: other clients keep being served
        with self.lock:
            now = utc_now()
            context = _Context(request, target, now, correlation)
            try:
                self._authenticate(context)
                if not target.query_lower.get("api-version"):
                    raise ArmError(
                        400,
                        "MissingApiVersionParameter",
                        "The api-version query parameter (?api-version=) is required for all requests.",
                    )
                self.state.advance(now)
                response = self._route_arm(context)
            except ArmError as error:
                response = error.response()
            if fault is not None and fault.fault.kind == "reset_after":
                # Acted on, but the answer is lost: the client cannot tell whether anything happened.
                self._record(request, target, 0)
                return HttpResponse(0, abort=True)
            if fault is not None and fault.fault.kind == "error_after":
                response = ArmError(
                    500, "InternalServerError", "Encountered internal server error. Please try again."
                ).response()
            self._finish_arm(request, target, response, correlation)
            return response

    def _fault_response(self, fault: Fault, method: str) -> HttpResponse:
        if fault.kind == "throttle":
            operation = "Read" if method == "GET" else "Write"
            return ArmError(
                429,
                "TooManyRequests",
                f"The request is being throttled as the limit has been reached for operation type - {operation}_"
                "ObservationWindow_00:05:00. For more information, see - https://aka.ms/srpthrottlinglimits",
                [("Retry-After", str(fault.retry_after))],
            ).response()
        return ArmError(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry the request after some time.",
            [("Retry-After", str(fault.retry_after))],
        ).response()

    def _finish_arm(
        self, request: HttpRequest, target: _Target, response: HttpResponse, correlation: str, exhausted: bool = False
    ) -> None:
        """Add the headers every ARM response carries, count the request against the hourly budget, record it."""
        method = request.method.upper()
        kind = "reads" if method in ("GET", "HEAD") else "deletes" if method == "DELETE" else "writes"
        if time.monotonic() - self._budget_window > 3600:
            self._budget_window = time.monotonic()
            self._budget = {"reads": READS_PER_HOUR, "writes": WRITES_PER_HOUR, "deletes": DELETES_PER_HOUR}
        self._budget[kind] = max(0, self._budget[kind] - 1)
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
            headers.append(
                (f"x-ms-ratelimit-remaining-subscription-{kind}", "0" if exhausted else str(self._budget[kind]))
            )
        response.headers.extend(headers)
        self._record(request, target, response.status)

    def _authenticate(self, context: _Context) -> None:
        header = context.request.header("Authorization")
        if header is None or not header.strip():
            raise self._unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                "The authentication failed because of missing 'Authorization' header.",
            )
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise self._unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                "The authentication failed because of invalid 'Authorization' header format.",
            )
        context.token_hash = _token_hash(token)
        info = self.state.tokens.get(token)
        if info is None:
            raise self._unauthorized(
                "InvalidAuthenticationToken", "The access token is invalid.", "The access token is invalid."
            )
        now = context.now
        if now < info.expires_at and self._take_fault(("token_expiry",), context.request.method, context.target.path):
            info.expires_at = now - timedelta(milliseconds=1)  # the token stays expired from now on
        if now >= info.expires_at:
            message = (
                f"The access token expiry UTC time '{fmt_dotnet_time(info.expires_at)}' is earlier than current UTC "
                f"time '{fmt_dotnet_time(now)}'."
            )
            raise self._unauthorized("ExpiredAuthenticationToken", message, message)

    @staticmethod
    def _unauthorized(code: str, message: str, description: str) -> ArmError:
        challenge = (
            f'Bearer authorization_uri="https://login.windows.net/{TENANT_ID}", error="invalid_token", '
            f'error_description="{description}"'
        )
        return ArmError(401, code, message, [("WWW-Authenticate", challenge)])

    # ---- ARM: routing ------------------------------------------------------------------------------------------------

    def _route_arm(self, context: _Context) -> HttpResponse:
        seg = context.target.segments
        low = [s.lower() for s in seg]
        state = self.state
        if low[0] != "subscriptions" or len(seg) < 2:
            raise ArmError(
                404, "NotFound", f"No HTTP resource was found that matches the request URI '{context.target.path}'."
            )
        if low[1] != state.subscription_id:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{seg[1]}' could not be found.")
        if len(seg) < 4 or low[2] != "resourcegroups":
            raise ArmError(
                404, "NotFound", f"No HTTP resource was found that matches the request URI '{context.target.path}'."
            )
        if low[3] != state.resource_group.lower():
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{seg[3]}' could not be found.")
        if len(seg) < 8 or low[4] != "providers" or low[5] != "microsoft.recoveryservices" or low[6] != "vaults":
            raise ArmError(
                404, "NotFound", f"No HTTP resource was found that matches the request URI '{context.target.path}'."
            )
        if low[7] != state.vault_name.lower():
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.RecoveryServices/vaults/{seg[7]}' under resource group '{seg[3]}' was not "
                "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        rest, rest_low = seg[8:], low[8:]
        method = context.request.method.upper()
        handler = self._match_route(rest_low)
        if handler is None:
            raise ArmError(
                404, "NotFound", f"No HTTP resource was found that matches the request URI '{context.target.path}'."
            )
        expected_method, function = handler
        if method != expected_method:
            raise ArmError(405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'.")
        return function(context, rest)

    def _match_route(self, low: list[str]) -> tuple[str, Callable[[_Context, list[str]], HttpResponse]] | None:
        """(method, handler) for a path below the vault; handlers get the decoded segments below the vault."""
        n = len(low)
        if n == 0:
            return "GET", self._get_vault
        if low[0] == "backupfabrics" and n >= 6 and low[2] == "protectioncontainers" and low[4] == "protecteditems":
            tail = low[6:]
            if not tail:
                return "GET", self._get_item
            if tail == ["backup"]:
                return "POST", self._trigger_backup
            if len(tail) == 2 and tail[0] == "operationsstatus":
                return "GET", self._get_operation_status
            if len(tail) == 2 and tail[0] == "operationresults":
                return "GET", self._get_operation_result
            if tail == ["recoverypoints"]:
                return "GET", self._list_recovery_points
            if len(tail) == 2 and tail[0] == "recoverypoints":
                return "GET", self._get_recovery_point
            if len(tail) == 3 and tail[0] == "recoverypoints" and tail[2] == "restore":
                return "POST", self._trigger_restore
            return None
        if n == 2 and low[0] == "backupoperations":
            return "GET", self._get_operation_status
        if low[0] == "backupjobs":
            if n == 1:
                return "GET", self._list_jobs
            if n == 2:
                return "GET", self._get_job
            if n == 3 and low[2] == "cancel":
                return "POST", self._cancel_job
            if n == 4 and low[2] == "operationresults":
                return "GET", self._get_cancel_result
            return None
        if low == ["backupprotecteditems"]:
            return "GET", self._list_items
        return None

    # ---- ARM: vault, items, recovery points ------------------------------------------------------------------------

    def _get_vault(self, context: _Context, rest: list[str]) -> HttpResponse:
        return json_response(200, self.state.render_vault())

    def _require_item(self, rest: list[str]) -> ItemState:
        item = None
        if rest[1].lower() == "azure":
            item = self.state.find_item(rest[3], rest[5])
        if item is None:
            raise ArmError(
                404,
                "BMSUserErrorDataSourceObjectNotFound",
                "Item not found. Selected item might have been deleted. "
                "Please check if item is registered to the vault.",
            )
        return item

    def _get_item(self, context: _Context, rest: list[str]) -> HttpResponse:
        return json_response(200, self.state.render_item(self._require_item(rest)))

    def _list_items(self, context: _Context, rest: list[str]) -> HttpResponse:
        clauses = parse_filter(context.target.query_lower.get("$filter"))
        items = list(self.state.items.values())
        for name, value in clauses:
            key = name.lower()
            wanted = value.lower()
            if key == "backupmanagementtype":
                items = [i for i in items if i.seed.backup_management_type.lower() == wanted]
            elif key in ("itemtype", "workloadtype"):
                items = [i for i in items if i.seed.workload.lower() == wanted]
            elif key == "friendlyname":
                items = [i for i in items if i.seed.friendly_name.lower() == wanted]
            elif key == "containername":
                items = [
                    i for i in items
                    if wanted in (i.seed.container_name.lower(), i.seed.container_name.split(";", 1)[1].lower())
                ]  # fmt: skip
            elif key == "policyname":
                items = [i for i in items if self.state.render_item(i)["properties"]["policyName"].lower() == wanted]
            elif key == "fabricname":
                items = [i for i in items if i.seed.fabric_name.lower() == wanted]
            elif key not in IGNORED_ITEM_FILTER_FIELDS:
                raise _invalid_filter(f"{name} eq '{value}'")
        return json_response(200, {"value": [self.state.render_item(i) for i in items]})

    def _list_recovery_points(self, context: _Context, rest: list[str]) -> HttpResponse:
        item = self._require_item(rest)
        clauses = parse_filter(context.target.query_lower.get("$filter"))
        start: datetime | None = None
        end: datetime | None = None
        for name, value in clauses:
            key = name.lower()
            if key == "startdate":
                start = parse_filter_date(name, value)
            elif key == "enddate":
                end = parse_filter_date(name, value)
            elif key not in IGNORED_RP_FILTER_FIELDS:
                raise _invalid_filter(f"{name} eq '{value}'")
        points = [
            rp for rp in reversed(item.recovery_points)
            if (start is None or rp.time >= start) and (end is None or rp.time <= end)
        ]  # fmt: skip
        return json_response(
            200, {"value": [self.state.render_recovery_point(item, rp) for rp in points], "nextLink": None}
        )

    def _get_recovery_point(self, context: _Context, rest: list[str]) -> HttpResponse:
        item = self._require_item(rest)
        rp = _find_rp(item, rest[7])
        return json_response(200, self.state.render_recovery_point(item, rp))

    # ---- ARM: backup / restore triggers and their async operations ---------------------------------------------

    def _trigger_backup(self, context: _Context, rest: list[str]) -> HttpResponse:
        item = self._require_item(rest)
        properties = _request_properties(context.request)
        expected = BACKUP_REQUEST_TYPE[item.workload]
        object_type = properties.get("objectType")
        if object_type != expected:
            raise _invalid_input(
                f"The backup request objectType '{object_type}' is not valid for the protected item "
                f"'{item.seed.protected_item_name}' (workload {item.workload}); expected '{expected}'."
                if object_type
                else "Input provided for the call is invalid: 'properties.objectType' is required."
            )
        backup_type: str | None = None
        if item.workload == "SQLDataBase":
            requested = str(properties.get("backupType") or "Full")
            matches = [t for t in BACKUP_TYPES if t.lower() == requested.lower()]
            if not matches:
                raise _invalid_input(
                    f"Input provided for the call is invalid: backupType '{requested}' is not supported."
                )
            backup_type = matches[0]
        expiry = properties.get("recoveryPointExpiryTimeInUTC")
        if expiry is not None:
            parsed = _parse_iso(expiry)
            if parsed is None:
                raise _invalid_input(
                    f"Input provided for the call is invalid: recoveryPointExpiryTimeInUTC '{expiry}'."
                )
            if parsed <= context.now:
                raise _invalid_input("Recovery point expiry time must be in the future.")
        if self.state.active_backup_job(item) is not None:
            raise ArmError(
                400,
                "UserErrorBackupOperationInProgress",
                "Unable to initiate backup as another backup operation is currently in progress. Please wait until "
                "the current backup operation is completed and then retry.",
            )
        op = self._start_operation(context, item, "backup", backup_type=backup_type)
        return self._accepted_with_operation(context, item, op, restore=False)

    def _trigger_restore(self, context: _Context, rest: list[str]) -> HttpResponse:
        item = self._require_item(rest)
        rp = _find_rp(item, rest[7])
        properties = _request_properties(context.request)
        object_type = properties.get("objectType")
        allowed = RESTORE_REQUEST_TYPES[item.workload]
        if object_type not in allowed:
            raise _invalid_input(
                f"The restore request objectType '{object_type}' is not valid for the protected item "
                f"'{item.seed.protected_item_name}'; expected one of {', '.join(sorted(allowed))}."
                if object_type
                else "Input provided for the call is invalid: 'properties.objectType' is required."
            )
        info = {
            "recoveryPointTime": fmt_time(rp.time),
            "recoveryType": str(properties.get("recoveryType") or "OriginalLocation"),
        }
        op = self._start_operation(context, item, "restore", restore_info=info)
        return self._accepted_with_operation(context, item, op, restore=True)

    def _start_operation(
        self,
        context: _Context,
        item: ItemState,
        kind: str,
        backup_type: str | None = None,
        restore_info: dict[str, str] | None = None,
    ) -> OperationState:
        failed = self._take_fault(("operation_failed",), context.request.method, context.target.path)
        job_id = None
        if failed is None:
            job = self.state.create_job(
                item,
                "Backup" if kind == "backup" else "Restore",
                now=context.now,
                activity_id=context.correlation_id,
                backup_type=backup_type,
                restore_info=restore_info,
            )
            job_id = job.job_id
        op = OperationState(
            op_id=str(uuid.uuid4()),
            kind=kind,
            item=item,
            job_id=job_id,
            start=context.now,
            polls_remaining=self.config.operation_polls_in_progress,
        )
        if failed is not None:
            op.error = {
                "code": "CloudInternalError",
                "message": "Microsoft Azure Backup encountered an internal error. Wait for a few minutes and then try "
                "the operation again. If the issue persists, please contact Microsoft support.",
            }
        self.state.operations[op.op_id] = op
        return op

    def _accepted_with_operation(
        self, context: _Context, item: ItemState, op: OperationState, restore: bool
    ) -> HttpResponse:
        base = self._async_base(context.request.method, context.target.path)
        container, name = item.seed.container_name, item.seed.protected_item_name
        if restore:
            # Restore 202s spell names in lower case (TriggerRestore_ALR_IaasVMRestoreRequest.json).
            prefix = base + self.state.vault_path
            container, name = container.lower(), name.lower()
            version = RESTORE_HEADER_API_VERSION
        else:
            # Backup 202s use "/Subscriptions/" and, for VMs, "iaasvmcontainer" without "v2" (TriggerBackup_Post.json).
            prefix = base + self.state.vault_path_capital
            container = container.replace(";iaasvmcontainerv2;", ";iaasvmcontainer;")
            name = name.replace(";iaasvmcontainerv2;", ";iaasvmcontainer;")
            version = BACKUP_HEADER_API_VERSION
        item_url = (
            f"{prefix}/backupFabrics/{item.seed.fabric_name}/protectionContainers/{container}/protectedItems/{name}"
        )
        return HttpResponse(
            202,
            [
                ("Azure-AsyncOperation", f"{item_url}/operationsStatus/{op.op_id}?api-version={version}"),
                ("Location", f"{item_url}/operationResults/{op.op_id}?api-version={version}"),
                ("Retry-After", str(self.config.retry_after)),
            ],
        )

    def _poll(self, context: _Context, op_id: str) -> OperationState:
        """One poll of an async operation (any of the three endpoints): counts down its InProgress polls."""
        op = self.state.operations.get(op_id) or self.state.operations.get(op_id.lower())
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        if op.end is None and not op.in_progress_fault_applied:
            armed = self._take_fault(("operation_in_progress",), context.request.method, context.target.path)
            if armed is not None:
                op.in_progress_fault_applied = True
                op.polls_remaining = max(op.polls_remaining, armed.fault.polls)
        if op.end is None:
            if op.polls_remaining > 0:
                op.polls_remaining -= 1
            else:
                op.end = context.now
        return op

    def _get_operation_status(self, context: _Context, rest: list[str]) -> HttpResponse:
        op = self._poll(context, rest[-1])
        return json_response(200, self.state.render_operation(op))

    def _get_operation_result(self, context: _Context, rest: list[str]) -> HttpResponse:
        op = self._poll(context, rest[-1])
        if op.status == "InProgress":
            url = self.base_url + context.target.raw_path
            status_url = url.rsplit("/operationResults/", 1)[0] + f"/operationsStatus/{op.op_id}"
            version = context.target.query_lower.get("api-version", BACKUP_HEADER_API_VERSION)
            return HttpResponse(
                202,
                [
                    ("Location", f"{url}?api-version={version}"),
                    ("Azure-AsyncOperation", f"{status_url}?api-version={version}"),
                    ("Retry-After", str(self.config.retry_after)),
                ],
            )
        if op.status == "Failed" and op.error:
            raise ArmError(400, op.error["code"], op.error["message"])
        return HttpResponse(204)

    # ---- ARM: jobs -------------------------------------------------------------------------------------------------

    def _require_job(self, job_id: str) -> JobState:
        job = self.state.jobs.get(job_id) or self.state.jobs.get(job_id.lower())
        if job is None:
            raise _job_not_found(job_id)
        return job

    def _get_job(self, context: _Context, rest: list[str]) -> HttpResponse:
        job = self._require_job(rest[1])
        if self._job_not_found_fault(context.request.method, context.target.path, job):
            raise _job_not_found(rest[1])
        return json_response(200, self.state.render_job(job, context.now))

    def _list_jobs(self, context: _Context, rest: list[str]) -> HttpResponse:
        raw_filter = context.target.query_lower.get("$filter")
        clauses = parse_filter(raw_filter)
        jobs = self.state.sorted_jobs()
        for name, value in clauses:
            key = name.lower()
            clause = f"{name} eq '{value}'"
            if key == "status":
                jobs = [j for j in jobs if j.status.lower() == _enum_value(clause, value, JOB_STATUS_VALUES).lower()]
            elif key == "operation":
                wanted = _enum_value(clause, value, JOB_OPERATION_VALUES).lower()
                jobs = [j for j in jobs if j.operation.lower() == wanted]
            elif key == "backupmanagementtype":
                wanted = _enum_value(clause, value, BACKUP_MANAGEMENT_TYPES).lower()
                jobs = [j for j in jobs if j.item.seed.backup_management_type.lower() == wanted]
            elif key == "jobid":
                jobs = [j for j in jobs if j.job_id.lower() == value.strip().lower()]
            elif key == "starttime":
                since = parse_filter_date(name, value)
                jobs = [j for j in jobs if j.start >= since]
            elif key == "endtime":
                until = parse_filter_date(name, value)
                jobs = [j for j in jobs if j.start <= until]
            else:
                raise _invalid_filter(clause)
        token = context.target.query_lower.get("$skiptoken")
        if token:
            after = _decode_skip_token(token)
            jobs = [j for j in jobs if (j.start, j.seq) < after]
        size = self.config.job_page_size
        page, remaining = jobs[:size], jobs[size:]
        body: dict[str, Any] = {"value": [self.state.render_job(j, context.now) for j in page]}
        if remaining:
            last = page[-1]
            params = [("api-version", NEXT_LINK_API_VERSION)]
            if raw_filter:
                params.append(("$filter", raw_filter))
            params.append(("$skiptoken", _encode_skip_token(last.start, last.seq)))
            base = self._async_base(context.request.method, context.target.path)
            body["nextLink"] = f"{base}{self.state.vault_path}/backupJobs?{urlencode(params)}"
        return json_response(200, body)

    def _cancel_job(self, context: _Context, rest: list[str]) -> HttpResponse:
        job = self._require_job(rest[1])
        if job.status != "InProgress":
            raise ArmError(
                400,
                "BMSUserErrorJobNotCancellable",
                f"The job '{job.job_id}' cannot be cancelled because it is in '{job.status}' state. Only jobs that "
                "are in progress can be cancelled.",
            )
        job.cancel_requested_at = context.now
        job.cancel_duration = self.config.cancel_duration / self.config.time_scale
        op = CancelOperationState(op_id=str(uuid.uuid4()), job_id=job.job_id)
        self.state.cancel_operations[op.op_id] = op
        base = self._async_base(context.request.method, context.target.path)
        location = (
            f"{base}{self.state.vault_path}/backupJobs/{job.job_id}/operationResults/{op.op_id}"
            f"?api-version={CANCEL_HEADER_API_VERSION}"
        )
        return HttpResponse(202, [("Location", location), ("Retry-After", str(self.config.retry_after))])

    def _get_cancel_result(self, context: _Context, rest: list[str]) -> HttpResponse:
        op = self.state.cancel_operations.get(rest[3]) or self.state.cancel_operations.get(rest[3].lower())
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{rest[3]}' was not found.")
        job = self.state.jobs[op.job_id]
        if job.status == "Cancelling":
            version = context.target.query_lower.get("api-version", CANCEL_HEADER_API_VERSION)
            return HttpResponse(
                202,
                [
                    ("Location", f"{self.base_url}{context.target.raw_path}?api-version={version}"),
                    ("Retry-After", str(self.config.retry_after)),
                ],
            )
        return HttpResponse(204)

    # ---- admin -----------------------------------------------------------------------------------------------------

    def _handle_admin(self, request: HttpRequest, target: _Target) -> HttpResponse:
        route = target.path.lower()[len(ADMIN_PREFIX) :].strip("/")
        method = request.method.upper()
        try:
            if route == "health" and method == "GET":
                return json_response(
                    200, {"status": "ok", "base_url": self.base_url, "vault_id": self.state.vault_path}
                )
            if route == "requests" and method == "GET":
                return json_response(200, {"value": [r.to_dict() for r in self.requests_snapshot()]})
            if route == "requests" and method == "DELETE":
                self.clear_requests()
                return HttpResponse(204)
            if route == "jobs" and method == "GET":
                return json_response(200, {"value": [j.to_dict() for j in self.job_views()]})
            if route == "faults" and method == "GET":
                return json_response(200, {"value": self.armed_faults()})
            if route == "faults" and method == "POST":
                fault = Fault.from_dict(_admin_json(request))
                fault_id = self.add_fault(fault)
                return json_response(201, {"id": fault_id, **fault.to_dict()})
            if route == "faults" and method == "DELETE":
                self.clear_faults()
                return HttpResponse(204)
            if route == "reset" and method == "POST":
                self.reset()
                return HttpResponse(204)
            if route == "items/behavior" and method == "POST":
                data = _admin_json(request)
                name = data.get("protected_item_name")
                if not isinstance(name, str):
                    raise AdminError(400, "protected_item_name is required")
                outcome = str(data.get("outcome", "Completed"))
                duration = float(data.get("duration_seconds", self.config.default_job_duration))
                try:
                    self.set_item_behavior(name, outcome, duration)
                except KeyError:
                    raise AdminError(404, f"unknown protected item {name!r}") from None
                return json_response(
                    200, {"protected_item_name": name, "outcome": outcome, "duration_seconds": duration}
                )
            if route == "config" and method == "GET":
                return json_response(200, dataclasses.asdict(self.config))
            if route == "config" and method == "POST":
                return json_response(200, dataclasses.asdict(self.configure(**_admin_json(request))))
        except (ValueError, TypeError) as error:
            return json_response(400, {"error": str(error)})
        except AdminError as error:
            return json_response(error.status, {"error": error.message})
        return json_response(404, {"error": f"no admin route {method} {target.path}"})


# --------------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, _, password = decoded.partition(":")
    return unquote(user), unquote(password)


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


def _entra_headers() -> list[tuple[str, str]]:
    return [
        ("Cache-Control", "no-store, no-cache"),
        ("Pragma", "no-cache"),
        ("x-ms-request-id", str(uuid.uuid4())),
        ("x-ms-ests-server", "2.1.emulator"),
    ]


def _entra_error(status: int, error: str, code: int, description: str) -> HttpResponse:
    """An Entra ID (AADSTS) error body, as MSAL and azure-identity parse it."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    payload = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
        f"Timestamp: {timestamp}",
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return json_response(status, payload, _entra_headers())


def _invalid_input(message: str) -> ArmError:
    return ArmError(400, "BMSUserErrorInvalidInput", message)


def _invalid_filter(clause: str) -> ArmError:
    return _invalid_input(
        f'Input provided for the call is invalid: the filter clause "{clause}" is not supported or is malformed.'
    )


def _job_not_found(job_id: str) -> ArmError:
    return ArmError(
        404,
        "BMSUserErrorJobNotFound",
        f"The job '{job_id}' was not found in the vault. The job ID might be incorrect or the job might have expired.",
    )


def _find_rp(item: ItemState, rp_id: str) -> Any:
    for rp in item.recovery_points:
        if rp.rp_id == rp_id:
            return rp
    raise ArmError(
        404,
        "BMSUserErrorRecoveryPointNotFound",
        f"Recovery point '{rp_id}' was not found for the item. It might have expired or been deleted.",
    )


def _request_properties(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body.decode("utf-8")) if request.body else None
    except (ValueError, UnicodeDecodeError):
        raise _invalid_input("Input provided for the call is invalid: the request body is not valid JSON.") from None
    properties = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(properties, dict):
        raise _invalid_input("Input provided for the call is invalid: 'properties' is required.")
    return properties


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    # Python < 3.11 cannot read 7 fraction digits; trim to microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_filter(raw: str | None) -> list[tuple[str, str]]:
    """Split an OData-ish ``a eq 'x' and b eq 'y'`` filter; anything else is BMSUserErrorInvalidInput."""
    if raw is None or not raw.strip():
        return []
    clauses = []
    for part in _AND.split(raw.strip()):
        match = _CLAUSE.match(part)
        if not match:
            raise _invalid_filter(part.strip())
        clauses.append((match.group(1), match.group(2)))
    return clauses


def parse_filter_date(name: str, value: str) -> datetime:
    """``yyyy-MM-dd hh:mm:ss tt`` in UTC; also 24-hour times and ``00`` hours with AM (the spec examples do that)."""
    match = _FILTER_DATE.match(value)
    if not match:
        raise _invalid_filter(f"{name} eq '{value}'")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    ampm = (match.group(7) or "").upper()
    if ampm:
        if hour > 12:
            raise _invalid_filter(f"{name} eq '{value}'")
        hour = hour % 12 + (12 if ampm == "PM" else 0)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        raise _invalid_filter(f"{name} eq '{value}'") from None


def _enum_value(clause: str, value: str, allowed: tuple[str, ...]) -> str:
    for candidate in allowed:
        if candidate.lower() == value.strip().lower():
            return candidate
    raise _invalid_filter(clause)


def _encode_skip_token(start: datetime, seq: int) -> str:
    raw = json.dumps([start.isoformat(), seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_skip_token(token: str) -> tuple[datetime, int]:
    try:
        padded = token + "=" * (-len(token) % 4)
        start, seq = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(start), int(seq)
    except (ValueError, TypeError, binascii.Error):
        raise _invalid_input("Input provided for the call is invalid: the $skipToken is not valid.") from None


def _admin_json(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body.decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        raise AdminError(400, "body must be JSON") from None
    if not isinstance(data, dict):
        raise AdminError(400, "body must be a JSON object")
    return data

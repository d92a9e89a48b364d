"""Emulated Entra ID: OpenID metadata, instance discovery and the client-credentials token endpoint, plus the store
of issued access tokens that the ARM side checks. Error bodies are AADSTS errors as MSAL and azure-identity parse them.

Thread-safe on its own (the token store has one small lock).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from .config import CLIENT_ID, CLIENT_SECRET, TENANT_ID, EmulatorConfig
from .state import utc_now
from .wire import HttpRequest, HttpResponse, Target, json_response

RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
# Audiences the real ARM front door accepts in a bearer token (besides the configured endpoint's own resource);
# `<resource>/.default` and `<resource>//.default` are both valid scopes for each.
ARM_RESOURCES = frozenset({"https://management.azure.com", "https://management.core.windows.net"})
MAX_TOKENS = 100_000  # expired tokens are dropped beyond this many


class _Host(Protocol):
    """What Entra needs of the application: its public URL and current settings."""

    base_url: str
    config: EmulatorConfig


@dataclass
class TokenState:
    client_id: str
    issued_at: datetime
    expires_at: datetime
    audience: str


def token_hash(token: str) -> str:
    """First 12 hex digits of the token's SHA-256: tells tokens apart in logs without revealing them."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class Entra:
    """The token endpoint and metadata of the emulated tenant, and the tokens it issued."""

    def __init__(self, host: _Host) -> None:
        self._host = host
        self._lock = threading.Lock()
        self.tokens: dict[str, TokenState] = {}

    @property
    def base_url(self) -> str:
        return self._host.base_url

    @property
    def config(self) -> EmulatorConfig:
        return self._host.config

    def reset(self) -> None:
        with self._lock:
            self.tokens = {}

    def lookup(self, token: str) -> TokenState | None:
        """The issued token, or None for a token this emulator never issued.

        :param token: the bearer token.
        """
        with self._lock:
            return self.tokens.get(token)

    def expire(self, info: TokenState, now: datetime) -> None:
        """Expire an issued token from now on (the ``token_expiry`` fault)."""
        with self._lock:
            info.expires_at = now - timedelta(milliseconds=1)

    def issue_token(self, lifetime: int | None = None) -> str:
        """Mint an access token directly (tests that exercise ARM without the token endpoint).

        :param lifetime: seconds; default ``EmulatorConfig.token_lifetime``.
        """
        return self._mint_token(CLIENT_ID, lifetime)[0]

    def handle(self, request: HttpRequest, target: Target) -> HttpResponse:
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

    def _instance_discovery(self, target: Target) -> HttpResponse:
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
        token, lifetime = self._mint_token(client_id, None, resource.removesuffix("/").lower())
        return json_response(
            200,
            {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token},
            _entra_headers(),
        )

    def accepted_resources(self) -> frozenset[str]:
        """Token audiences ARM accepts (lower case, no trailing slash): the emulator's own endpoint and the public
        ARM resources the SDKs ask for by default."""
        return frozenset({self.base_url.rstrip("/").lower(), *ARM_RESOURCES})

    def _mint_token(self, client_id: str, lifetime: int | None, audience: str = "") -> tuple[str, int]:
        seconds = int(lifetime if lifetime is not None else self.config.token_lifetime)
        token = "emu." + secrets.token_urlsafe(32)
        now = utc_now()
        with self._lock:
            if len(self.tokens) >= MAX_TOKENS:
                self.tokens = {k: v for k, v in self.tokens.items() if v.expires_at > now}
            self.tokens[token] = TokenState(client_id, now, now + timedelta(seconds=seconds), audience)
        return token, seconds


def _basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, _, password = decoded.partition(":")
    return unquote(user), unquote(password)


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


__all__ = ["ARM_RESOURCES", "Entra", "TokenState", "token_hash"]

"""The bearer token only ever goes to the configured ARM origin — tried with URL tricks against real listeners.

Two HTTPS servers share a test CA that the hooks trust (a combined bundle with the emulator's CA, so sign-in still
works): a small *ARM* that answers a backup POST with a trick URL in ``Azure-AsyncOperation`` / ``Location``, a job
listing with a trick ``nextLink`` and GETs with redirects; and a *foreign* listener (IPv4 and IPv6, plus a plain
HTTP one) that records every ``Authorization`` header it is sent. Every trick must be refused, and the foreign
listeners must never see a token. A control test proves the listener does record a header that is sent to it.

The sign-in itself is not under test here, so the hooks get a fixed-token credential (the token endpoint is the
emulator's own business, tested elsewhere); everything after it — URL checks, requests/aiohttp — is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from azure.core.credentials import AccessToken

from airflow_backup_provider import protocol
from airflow_backup_provider.exceptions import (
    AzureBackupAcceptedError,
    AzureBackupApiError,
    AzureBackupConfigError,
    AzureBackupForeignHostError,
)
from airflow_backup_provider.hooks.backup import AzureBackupAsyncHook, AzureBackupHook
from airflow_backup_provider.protocol import ApiRequest, RetryPolicy

TOKEN = "confinement-test-token-0123456789"
CONN_ID = "azure_backup_confinement"
CONTAINER = "IaasVMContainer;iaasvmcontainerv2;rg;vm1"
ITEM = "VM;iaasvmcontainerv2;rg;vm1"


@dataclass
class Recorder:
    """What a listener saw: (method, path, Authorization header or None) per request."""

    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, authorization: str | None) -> None:
        with self.lock:
            self.seen.append((method, path, authorization))

    @property
    def tokens(self) -> list[str]:
        with self.lock:
            return [auth for _, _, auth in self.seen if auth]


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _serve(handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None, host: str = "127.0.0.1") -> Any:
    server_cls = _IPv6Server if ":" in host else ThreadingHTTPServer
    server = server_cls((host, 0), handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _recording_handler(recorder: Recorder, respond: Any = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            recorder.add(self.command, self.path, self.headers.get("Authorization"))
            status, headers, body = respond(self) if respond else (200, {}, b"{}")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _handle

    return Handler


@dataclass
class Net:
    arm: Recorder
    foreign: Recorder
    arm_port: int
    foreign_port: int
    foreign6_port: int | None
    plain_port: int
    trick: dict[str, str] = field(default_factory=dict)  # what the ARM answers next: {"url": ..., "redirect": ...}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Net, trustme.CA]]:
    """The listeners, started once per module (shutting a server down takes half a second)."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(server_context)
    foreign = Recorder()
    started = [_serve(_recording_handler(foreign), server_context)]
    try:
        started.append(_serve(_recording_handler(foreign), server_context, host="::1"))
        foreign6_port: int | None = started[-1].server_address[1]
    except OSError:  # no IPv6 loopback on this machine
        foreign6_port = None
    started.append(_serve(_recording_handler(foreign), None))  # plain http, for downgrades
    arm = Recorder()
    state = Net(arm, foreign, 0, started[0].server_address[1], foreign6_port, started[-1].server_address[1])

    def arm_answer(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        trick = state.trick.get("url", "")
        if "redirect" in state.trick:
            return int(state.trick["redirect"]), {"Location": trick}, b""
        if handler.command == "POST":
            return 202, {"Azure-AsyncOperation": trick, "Location": trick, "Retry-After": "0"}, b""
        return 200, {}, json.dumps({"value": [], "nextLink": trick}).encode()

    started.append(_serve(_recording_handler(arm, arm_answer), server_context))
    state.arm_port = started[-1].server_address[1]
    try:
        yield state, ca
    finally:
        for server in started:
            server.shutdown()
            server.server_close()


@pytest.fixture
def net(emulator: Any, servers: tuple[Net, trustme.CA], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Net:
    state, ca = servers
    state.arm.seen.clear()
    state.foreign.seen.clear()
    state.trick.clear()
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(Path(emulator.ca_file).read_bytes() + b"\n" + ca.cert_pem.bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    conn = {
        "conn_type": "azure_backup",
        "login": "client-id",
        "password": "client-secret-never-shown",
        "extra": {
            "subscription_id": "sub",
            "tenant_id": "tenant",
            "resource_group_name": "rg",
            "vault_name": "vault",
            "resource_manager_endpoint": f"https://127.0.0.1:{state.arm_port}",
            "authority_host": emulator.base_url,
        },
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return state


class FixedTokenCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, int(time.time()) + 3600)

    def close(self) -> None:
        pass


class AsyncFixedTokenCredential:
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, int(time.time()) + 3600)

    async def close(self) -> None:
        pass


def _hook() -> AzureBackupHook:
    hook = AzureBackupHook(
        CONN_ID, retry_policy=RetryPolicy(max_attempts=1), operation_poll_interval=0, request_timeout=5
    )
    hook._credential = FixedTokenCredential()
    return hook


def _tricks(net: Net) -> list[tuple[str, str]]:
    a, f, p = net.arm_port, net.foreign_port, net.plain_port
    tricks = [
        ("backslash-userinfo", f"https://127.0.0.1:{f}\\@127.0.0.1:{a}/x"),
        ("userinfo-arm-then-foreign", f"https://127.0.0.1:{a}@127.0.0.1:{f}/x"),
        ("userinfo-on-arm", f"https://user:pass@127.0.0.1:{a}/x"),
        ("other-port", f"https://127.0.0.1:{f}/x"),
        ("other-port-by-name", f"https://localhost:{f}/x"),
        ("case", f"https://LOCALHOST:{f}/x"),
        ("trailing-dot", f"https://localhost.:{f}/x"),
        ("leading-zeros", f"https://127.000.000.001:{f}/x"),
        ("short-ipv4", f"https://127.1:{f}/x"),
        ("decimal-ip", f"https://2130706433:{f}/x"),
        ("hex-ip", f"https://0x7f.0.0.1:{f}/x"),
        ("scheme-relative", f"//127.0.0.1:{f}/x"),
        ("relative-path", "/subscriptions/sub/x"),
        ("http-downgrade", f"http://127.0.0.1:{p}/x"),
        ("fragment-userinfo", f"https://127.0.0.1:{f}/x#@127.0.0.1:{a}"),
        ("double-port", f"https://127.0.0.1:{a}:{f}/x"),
        ("space-in-host", f"https://127.0.0.1:{f} /x"),
        ("tab-in-host", f"https://127.0.0.1\t:{f}/x"),
        ("crlf-header-injection", f"https://127.0.0.1:{a}/x\r\nHost: 127.0.0.1:{f}"),
        ("encoded-at", f"https://127.0.0.1:{a}%40127.0.0.1:{f}/x"),
        ("empty-host", f"https://:{f}/x"),
    ]
    if net.foreign6_port is not None:
        six = net.foreign6_port
        tricks += [
            ("ipv6-loopback", f"https://[::1]:{six}/x"),
            ("ipv6-long-form", f"https://[0:0:0:0:0:0:0:1]:{six}/x"),
            ("ipv4-mapped-ipv6", f"https://[::ffff:127.0.0.1]:{f}/x"),
        ]
    return tricks


TRICK_IDS = [name for name, _ in _tricks(Net(Recorder(), Recorder(), 1, 2, 3, 4))]


def _trick(net: Net, name: str) -> str:
    return dict(_tricks(net))[name]


def test_control_the_foreign_listener_records_a_token_sent_to_it(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without this, a listener that records nothing would make every test below pass."""
    requests.get(
        f"https://127.0.0.1:{net.foreign_port}/x", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).raise_for_status()
    assert net.foreign.tokens == [f"Bearer {TOKEN}"]


def test_control_a_same_origin_url_is_followed_with_the_token(net: Net) -> None:
    """The checks refuse tricks, not ARM itself: a plain URL on the ARM origin is sent, with the token."""
    hook = _hook()
    url = f"https://127.0.0.1:{net.arm_port}/next?x=1"
    response = hook.run(protocol.call(hook.api.follow(url, "nextLink", (200,)), hook.retry_policy))
    assert response.status == 200
    assert net.arm.tokens == [f"Bearer {TOKEN}"]


# A CR/LF cannot travel inside a response header (it ends the header), so that trick only applies to bodies.
HEADER_TRICK_IDS = [name for name in TRICK_IDS if name != "crlf-header-injection"]


@pytest.mark.parametrize("name", HEADER_TRICK_IDS)
def test_operation_header_tricks_are_refused(net: Net, name: str) -> None:
    net.trick["url"] = _trick(net, name)
    hook = _hook()
    with pytest.raises(AzureBackupAcceptedError) as info:
        hook.trigger_backup(CONTAINER, ITEM)
    assert isinstance(info.value.__cause__, AzureBackupForeignHostError), info.value
    assert TOKEN not in str(info.value)
    assert net.arm.tokens, "the POST itself went to ARM with the token"
    assert net.foreign.seen == []


@pytest.mark.parametrize("name", TRICK_IDS)
def test_next_link_tricks_are_refused(net: Net, name: str) -> None:
    net.trick["url"] = _trick(net, name)
    with pytest.raises(AzureBackupForeignHostError):
        _hook().list_jobs()
    assert net.foreign.seen == []


def _only_arm_got_tokens(net: Net) -> None:
    assert net.foreign.seen == []
    assert all(auth == f"Bearer {TOKEN}" for auth in net.arm.tokens)


@pytest.mark.parametrize("name", TRICK_IDS)
def test_transport_check_alone_keeps_the_token_from_foreign_origins(net: Net, name: str) -> None:
    """Skip the core's follow_url check: the sync transport checks the origin urllib3 connects to.

    A URL the transport itself reads as the ARM origin may be sent there (requests percent-encodes a CR/LF into the
    path); anything else is refused before a connection is made.
    """
    hook = _hook()
    with contextlib.suppress(AzureBackupForeignHostError, AzureBackupApiError, ValueError):
        hook.run(protocol.call(ApiRequest("GET", _trick(net, name), frozenset({200})), hook.retry_policy))
    _only_arm_got_tokens(net)


@pytest.mark.parametrize("name", TRICK_IDS)
def test_async_transport_check_alone_keeps_the_token_from_foreign_origins(net: Net, name: str) -> None:
    async def go() -> None:
        async with AzureBackupAsyncHook(CONN_ID, retry_policy=RetryPolicy(max_attempts=1), request_timeout=5) as hook:
            hook._credential = AsyncFixedTokenCredential()
            await hook.arun(protocol.call(ApiRequest("GET", _trick(net, name), frozenset({200})), hook.retry_policy))

    with contextlib.suppress(AzureBackupForeignHostError, AzureBackupApiError, ValueError):
        asyncio.run(go())
    _only_arm_got_tokens(net)


@pytest.mark.parametrize("name", ["other-port", "userinfo-arm-then-foreign", "backslash-userinfo", "ipv6-loopback"])
def test_async_operation_header_tricks_are_refused(net: Net, name: str) -> None:
    if name not in dict(_tricks(net)):
        pytest.skip("no IPv6 loopback")
    net.trick["url"] = _trick(net, name)

    async def go() -> None:
        async with AzureBackupAsyncHook(CONN_ID, retry_policy=RetryPolicy(max_attempts=1), request_timeout=5) as hook:
            hook._credential = AsyncFixedTokenCredential()
            await hook.atrigger_backup(CONTAINER, ITEM)

    with pytest.raises(AzureBackupAcceptedError) as info:
        asyncio.run(go())
    assert isinstance(info.value.__cause__, AzureBackupForeignHostError)
    assert net.foreign.seen == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(net: Net, status: int) -> None:
    net.trick.update(url=f"https://127.0.0.1:{net.foreign_port}/stolen", redirect=str(status))
    with pytest.raises(AzureBackupApiError) as info:
        _hook().list_jobs()
    assert info.value.http_status == status
    assert net.foreign.seen == []

    async def go() -> None:
        async with AzureBackupAsyncHook(CONN_ID, retry_policy=RetryPolicy(max_attempts=1), request_timeout=5) as hook:
            hook._credential = AsyncFixedTokenCredential()
            await hook.alist_jobs()

    with pytest.raises(AzureBackupApiError):
        asyncio.run(go())
    assert net.foreign.seen == []


BAD_ENDPOINTS = [
    pytest.param("https://user:p4ss-w0rd@127.0.0.1:9", id="userinfo"),
    pytest.param("https://127.0.0.1:9\\@127.0.0.1:10", id="backslash"),
    pytest.param("https://127.0.0.1:9 /x", id="whitespace"),
    pytest.param("https://127.0.0.1:9/\x00x", id="control-char"),
    pytest.param("https://127.0.0.1:9/?x=1", id="query"),
    pytest.param("https://127.0.0.1:9/#frag", id="fragment"),
    pytest.param("http://127.0.0.1:9", id="http"),
    pytest.param("https://", id="empty-host"),
]


@pytest.mark.parametrize("fieldname", ["resource_manager_endpoint", "authority_host"])
@pytest.mark.parametrize("value", BAD_ENDPOINTS)
def test_bad_configured_endpoints_are_refused_by_both_hooks(
    monkeypatch: pytest.MonkeyPatch, fieldname: str, value: str
) -> None:
    extra = {"subscription_id": "sub", "tenant_id": "tenant", fieldname: value}
    conn = {"conn_type": "azure_backup", "login": "id", "password": "client-secret-never-shown", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    with pytest.raises(AzureBackupConfigError) as info:
        _ = AzureBackupHook(CONN_ID).settings
    assert info.value.field == fieldname
    assert "p4ss-w0rd" not in str(info.value) and "client-secret-never-shown" not in str(info.value)

    async def load() -> None:
        await AzureBackupAsyncHook(CONN_ID).load_settings()

    with pytest.raises(AzureBackupConfigError) as async_info:
        asyncio.run(load())
    assert async_info.value.field == fieldname
    assert "p4ss-w0rd" not in str(async_info.value)

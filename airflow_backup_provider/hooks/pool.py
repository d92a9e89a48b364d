"""One credential, token cache and HTTP session per process for the triggerer's many waits.

Every :class:`PooledAsyncHook` of one event loop shares

- one token source (azure-identity credential + cached token) per (connection, tenant, client, authority), and
- one ``aiohttp.ClientSession`` (one TLS context, one connection pool) per (ARM origin, timeouts), with a keep-alive
  longer than the poll interval, so polls reuse warm TLS connections.

Both are reference-counted: the last hook that releases one closes it. The TLS context is built once per session in
a worker thread, never per trigger on the event loop. Nothing secret is part of a key (the secret stays in the
credential, which lives only in memory).
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from airflow_backup_provider.hooks.backup_async import AzureBackupAsyncHook, _user_agent

# Idle keep-alive of pooled connections: longer than any usual poll interval (aiohttp's default is 15 s).
MIN_KEEPALIVE = 300.0


@dataclass
class _TokenSource:
    hook: AzureBackupAsyncHook  # holds the credential and the cached token (its own cache and refresh rules)
    users: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    generation: int = 0


@dataclass
class _SessionEntry:
    session: aiohttp.ClientSession
    users: int = 0


class ConnectionPool:
    """The shared credentials and sessions of one event loop (use :func:`pool_for_loop`)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], _TokenSource] = {}
        self._sessions: dict[tuple[Any, ...], _SessionEntry] = {}
        self._lock = asyncio.Lock()
        self.sessions_created = 0  # observability (tests, benchmarks)
        self.credentials_created = 0

    async def token_source(self, hook: AzureBackupAsyncHook) -> tuple[tuple[str, ...], _TokenSource]:
        settings = await hook.load_settings()
        key = (hook.azure_backup_conn_id, settings.tenant_id or "", settings.client_id or "", settings.authority_host)
        async with self._lock:
            source = self._tokens.get(key)
            if source is None:
                owner = AzureBackupAsyncHook(hook.azure_backup_conn_id, request_timeout=hook.request_timeout)
                owner._settings, owner._secret = hook._settings, hook._secret
                source = self._tokens[key] = _TokenSource(owner)
                self.credentials_created += 1
            source.users += 1
        return key, source

    async def release_token_source(self, key: tuple[str, ...]) -> None:
        async with self._lock:
            source = self._tokens.get(key)
            if source is None:
                return
            source.users -= 1
            if source.users > 0:
                return
            del self._tokens[key]
        await source.hook.aclose()

    async def session(self, origin: str, timeout: tuple[float, float], keepalive: float) -> tuple[Any, ...]:
        key = (origin, timeout)
        async with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                # create_default_context reads the trust store (tens of ms with the system store): once, off the loop.
                context = await asyncio.to_thread(ssl.create_default_context)
                connector = aiohttp.TCPConnector(ssl=context, keepalive_timeout=max(MIN_KEEPALIVE, keepalive))
                connect, read = timeout
                entry = self._sessions[key] = _SessionEntry(
                    aiohttp.ClientSession(
                        timeout=aiohttp.ClientTimeout(total=connect + read, sock_connect=connect, sock_read=read),
                        connector=connector,
                        headers={"User-Agent": _user_agent(f"aiohttp/{aiohttp.__version__}")},
                    )
                )
                self.sessions_created += 1
            entry.users += 1
        return key

    def session_of(self, key: tuple[Any, ...]) -> aiohttp.ClientSession:
        return self._sessions[key].session

    async def release_session(self, key: tuple[Any, ...]) -> None:
        async with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                return
            entry.users -= 1
            if entry.users > 0:
                return
            del self._sessions[key]
        await entry.session.close()

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    @property
    def open_credentials(self) -> int:
        return len(self._tokens)


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConnectionPool] = weakref.WeakKeyDictionary()


def pool_for_loop() -> ConnectionPool:
    """The pool of the running event loop (a triggerer has one loop; every ``asyncio.run`` gets a fresh pool)."""
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = ConnectionPool()
    return pool


class PooledAsyncHook(AzureBackupAsyncHook):
    """An :class:`AzureBackupAsyncHook` whose credential, token and session are the process pool's.

    Use as ``async with PooledAsyncHook(conn_id, keepalive=poll_interval * 2) as hook: ...``: entering leases the
    shared token source and session, leaving releases them (the last user closes them).

    :param keepalive: Seconds pooled connections stay open while idle (at least :data:`MIN_KEEPALIVE`).
    """

    def __init__(self, azure_backup_conn_id: str = AzureBackupAsyncHook.default_conn_name, *, keepalive: float = 0.0,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(azure_backup_conn_id, **kwargs)
        self.keepalive = keepalive
        self._pool: ConnectionPool | None = None
        self._token_key: tuple[str, ...] | None = None
        self._session_key: tuple[Any, ...] | None = None
        self._used_token: str | None = None

    async def __aenter__(self) -> PooledAsyncHook:
        await self.acquire()
        return self

    async def acquire(self) -> None:
        """Lease the shared token source and session (idempotent)."""
        await self.load_settings()
        if self._pool is None:
            self._pool = pool_for_loop()
        if self._token_key is None:
            self._token_key, _ = await self._pool.token_source(self)
        if self._session_key is None:
            self._session_key = await self._pool.session(self.api.origin.netloc, self.request_timeout, self.keepalive)

    async def aget_token(self, *, refresh: bool = False) -> str:
        await self.acquire()
        assert self._pool is not None and self._token_key is not None
        source = self._pool._tokens[self._token_key]
        async with source.lock:
            # A refresh asked for a token another user already replaced re-uses the replacement (one refresh for all).
            current = source.hook._token.token if source.hook._token is not None else None
            stale = refresh and current is not None and current == self._used_token
            token = await source.hook.aget_token(refresh=stale)
        self.token_requests = source.hook.token_requests
        self._used_token = token
        return token

    def _client_session(self) -> aiohttp.ClientSession:
        assert self._pool is not None and self._session_key is not None, "use the hook as an async context manager"
        return self._pool.session_of(self._session_key)

    async def aclose(self) -> None:
        pool, token_key, session_key = self._pool, self._token_key, self._session_key
        self._token_key = self._session_key = None
        if pool is not None:
            if session_key is not None:
                await pool.release_session(session_key)
            if token_key is not None:
                await pool.release_token_source(token_key)

"""Strict origin parsing: the single answer to "is this URL on the Resource Manager host?".

Rule: a URL is accepted only when every parser would read the same scheme, host and port from it (plain absolute
https, no userinfo, backslash, fragment, control or non-ASCII characters, no numeric-looking host labels); the bearer
token is only ever sent where :func:`same_host` says yes.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """Scheme, host and effective port of a URL, canonical: lower-case host, no trailing dot, port filled in."""

    host: str
    port: int
    scheme: str = "https"

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host + ("" if self.port == 443 else f":{self.port}")

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"


# A plain absolute https URL: no userinfo, no backslash, no fragment. Characters are checked before this runs.
_PLAIN_URL = re.compile(
    r"^https://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?][^#]*)?$"
)
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


def parse_origin(url: str, *, allow_query: bool = True) -> Origin:
    """The origin a URL names, or :class:`ValueError` for anything but a plain ``https://host[:port]/path?query``.

    Refused, because HTTP libraries disagree on them (a check with one parser and a connection with another sends
    the token elsewhere): userinfo (``@``), backslashes, whitespace and control characters, fragments, empty or
    malformed hosts, IPv4 addresses that are not four canonical decimal octets (``127.1``, ``0x7f.0.0.1``,
    ``2130706433``, ``127.000.0.1``), relative and scheme-relative URLs, any scheme but https.
    """
    if not isinstance(url, str) or not url:
        raise ValueError("is empty")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in url):
        raise ValueError("contains whitespace, a control character or a backslash")
    if not url.lower().startswith("https://"):
        raise ValueError("must be an https:// URL (absolute)")
    match = _PLAIN_URL.match(url)
    if match is None:
        raise ValueError("must be a plain https://host[:port]/path URL (no userinfo, fragment or odd host)")
    if not allow_query and "?" in (match.group("rest") or ""):
        raise ValueError("must not carry a query string")
    host = match.group("host").lower()
    if host.startswith("["):
        try:
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError("has a malformed IPv6 host") from None
    else:
        host = host.removesuffix(".")
        labels = host.split(".")
        if not host or any(not label for label in labels):
            raise ValueError("has an empty host or an empty host label")
        if _DOTTED_NUMBERS.match(host) or _NUMERIC_LABEL.match(labels[-1]):
            try:
                address = ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError("has a numeric host that is not a canonical IPv4 address") from None
            if str(address) != host:
                raise ValueError("has a numeric host that is not a canonical IPv4 address")
    port_text = match.group("port")
    port = int(port_text) if port_text else 443
    if not 0 < port < 65536:
        raise ValueError("has a port outside 1-65535")
    return Origin(host=host, port=port)


def origin_from_parts(scheme: str | None, userinfo: str | None, host: str | None, port: int | None) -> Origin | None:
    """Canonical origin from the parts an HTTP library parsed (None when there is userinfo, no host or no https)."""
    if (scheme or "").lower() != "https" or userinfo or not host:
        return None
    host = host.lower().strip("[]").removesuffix(".")
    if ":" in host:  # IPv6: one spelling per address
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    return Origin(host=host, port=port or 443)


def same_host(url: str, base_url: str) -> bool:
    """True when ``url`` is a plain https URL on the scheme, host and port of ``base_url`` (else never)."""
    try:
        return parse_origin(url) == parse_origin(base_url)
    except ValueError:
        return False


def describe_host(url: str) -> str:
    """The authority of a refused URL for an error message, without any userinfo (it may hold a password)."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = ""
    netloc = netloc.rsplit("@", 1)[-1] if netloc else url[:60]
    return "".join(ch if ch.isprintable() else "?" for ch in netloc)

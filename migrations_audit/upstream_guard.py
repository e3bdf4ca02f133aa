"""Where upstreams may point, and which secrets replays may send there.

Operators list the hosts and networks upstreams may reach in `MIGRATION_AUDIT_UPSTREAM_HOSTS`
(host names, `*.example.com`, IP addresses, CIDRs). A base URL is checked when an upstream is saved,
and every connection the proxy or a replay worker makes is checked again on the addresses it is about
to connect to (`GuardedConnector`), so a name that later resolves elsewhere (DNS rebinding) or a
redirect gets nowhere. A listed name may resolve only to public addresses, unless a listed network
covers the address: loopback, private, link-local (cloud metadata) and the like must be listed as
networks to be reached.

Connection errors are told apart only in a few generic classes (`connection_error_text`): what is
stored and shown never echoes an upstream's bytes, so stored errors cannot work as a port scanner.
"""

import errno
import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import requests
import requests.adapters
import urllib3
import urllib3.connection
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

SETTING = "MIGRATION_AUDIT_UPSTREAM_HOSTS"
# Report webhooks are the other place a team member names a URL the server then calls.
WEBHOOK_SETTING = "MIGRATION_AUDIT_WEBHOOK_HOSTS"
NOT_ALLOWED = f"upstream address not allowed by {SETTING}"
# Replay credentials come only from environment variables named for the purpose, so that no
# upstream can be made to receive SECRET_KEY, DATABASE_URL or another process secret.
REPLAY_KEY_ENV_PREFIX = "MIGRATION_AUDIT_REPLAY_KEY_"
_REPLAY_KEY_ENV = re.compile(rf"{REPLAY_KEY_ENV_PREFIX}[A-Z0-9_]+")
# Cloud metadata services: never reachable through a listed name (they are link-local or private
# too; listed here so that the rule does not depend on that).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UpstreamNotAllowed(aiohttp.ClientConnectionError):
    """A connection to an address the allow-list does not cover was refused before it was made."""

    def __str__(self) -> str:
        return NOT_ALLOWED


@dataclass(frozen=True)
class AllowList:
    names: frozenset[str]
    suffixes: tuple[str, ...]  # "*.example.com" is stored as ".example.com"
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def lists_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.names or host.endswith(self.suffixes)

    def covers(self, address: Address) -> bool:
        return any(address in network for network in self.networks)


def allow_list(setting: str = SETTING) -> AllowList:
    """The allow-list of a setting: upstreams' (MIGRATION_AUDIT_UPSTREAM_HOSTS) or webhooks'."""
    entries = getattr(settings, setting)
    if isinstance(entries, str):
        entries = entries.split(",")
    try:
        return _parse(tuple(entries))
    except ImproperlyConfigured as error:
        raise ImproperlyConfigured(f"{setting}: {error}") from None


@functools.lru_cache(maxsize=8)
def _parse(entries: tuple[str, ...]) -> AllowList:
    names, suffixes, networks = set(), [], []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = entry.removeprefix("*.")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", name):
            raise ImproperlyConfigured(f"{raw!r} is neither a host name, an IP address nor a CIDR.")
        if entry.startswith("*."):
            suffixes.append("." + name)
        else:
            names.add(name)
    return AllowList(frozenset(names), tuple(suffixes), tuple(networks))


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_public(address: Address) -> bool:
    """An address on the public internet: not loopback, private, link-local, multicast, reserved or
    a metadata service (nor an IPv6 form of one of those)."""
    if address in METADATA_ADDRESSES:
        return False
    if address.version == 6:
        embedded = address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None and not is_public(embedded):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def address_allowed(host: str, ip: str, *, setting: str = SETTING) -> bool:
    """May a connection for `host` go to `ip`? If a listed network covers the address, or if the
    host is a listed name and the address is public."""
    address = _address(ip)
    if address is None:
        return False
    rules = allow_list(setting)
    if rules.covers(address):
        return True
    return _address(host) is None and rules.lists_name(host) and is_public(address)


def base_url_problem(url: str) -> str | None:
    """Why an upstream may not have this base URL, or None. No DNS lookup: connections are checked
    on the addresses they go to."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "The base URL is not a valid URL."
    if parts.scheme.lower() not in ("http", "https"):
        return "The base URL must start with http:// or https://."
    if "@" in parts.netloc:
        return (
            "The base URL must not carry a user name or password (user:pass@): "
            "the proxy and replays send the credentials."
        )
    host = parts.hostname or ""
    if not host or "\\" in url:
        return "The base URL has no valid host."
    rules = allow_list()
    address = _address(host)
    allowed = rules.covers(address) if address is not None else rules.lists_name(host)
    if not allowed:
        return (
            f"{host} is not an allowed upstream host: the operator lists the hosts and networks "
            f"upstreams may reach in the {SETTING} setting."
        )
    return None


def validate_base_url(value: str) -> None:
    """Model field validator: forms, the admin and the services all go through it."""
    problem = base_url_problem(value)
    if problem:
        raise ValidationError(problem, code="upstream_not_allowed")


def replay_key_env_problem(name: str) -> str | None:
    if not name or _REPLAY_KEY_ENV.fullmatch(name):
        return None
    return (
        f"Replay credentials can only come from environment variables named "
        f"{REPLAY_KEY_ENV_PREFIX}<NAME> (capital letters, digits and _): {name[:100]!r} is not one."
    )


def validate_replay_key_env(value: str) -> None:
    problem = replay_key_env_problem(value)
    if problem:
        raise ValidationError(problem, code="replay_key_env_not_allowed")


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects only where the allow-list says. aiohttp hands IP literals past
    its resolver, so the check is on what host resolution returns (literals included): the very
    addresses the connection is then made to, a redirect's and a cached lookup's too."""

    async def _resolve_host(self, host: str, port: int, traces=None):
        addresses = await super()._resolve_host(host, port, traces=traces)
        if not addresses or not all(address_allowed(host, entry["host"]) for entry in addresses):
            raise UpstreamNotAllowed(host)
        return addresses


def connection_error_text(error: BaseException) -> str:
    """A connection error as one of a few generic classes, without the upstream's words or bytes."""
    if isinstance(error, UpstreamNotAllowed):
        return NOT_ALLOWED
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return "connect timeout"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "host name not resolved"
    if isinstance(error, aiohttp.ClientSSLError):
        return "TLS error"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "connection closed by the upstream"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "response cut short"
    if isinstance(error, aiohttp.ClientResponseError):
        return "invalid HTTP response"
    if isinstance(error, OSError):
        code = getattr(error, "errno", None)
        if code == errno.ECONNREFUSED:
            return "connection refused"
        if code in (errno.ECONNRESET, errno.EPIPE):
            return "connection reset"
    return "connection failed"


# Synchronous HTTP (report webhooks, with requests): the same check, made on the socket's address.


class AddressNotAllowed(ConnectionError):
    pass


def url_host_problem(url: str, *, setting: str) -> str | None:
    """Why a URL's host is not on the allow-list of `setting` (no DNS lookup), or None."""
    host = (urlsplit(url).hostname or "").lower()
    rules = allow_list(setting)
    address = _address(host)
    if host and (rules.covers(address) if address is not None else rules.lists_name(host)):
        return None
    return f"{host or 'That URL'} is not an allowed host: the operator lists them in the {setting} setting."


def guarded_session(*, setting: str) -> requests.Session:
    """A requests session that connects only to addresses the allow-list of `setting` permits: every
    address the name resolves to is checked before connecting, and the socket's peer after, so a
    name that changes between the two (DNS rebinding) gets nowhere. No proxy from the environment."""

    def check(host: str, sock) -> None:
        peer = sock.getpeername()[0]
        if not address_allowed(host, peer, setting=setting):
            sock.close()
            raise AddressNotAllowed(f"address not allowed by {setting}")

    def resolved_allowed(host: str, port: int) -> None:
        for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            if not address_allowed(host, sockaddr[0], setting=setting):
                raise AddressNotAllowed(f"address not allowed by {setting}")

    class Connection(urllib3.connection.HTTPConnection):
        def _new_conn(self):
            resolved_allowed(self._dns_host, self.port)
            sock = super()._new_conn()
            check(self._dns_host, sock)
            return sock

    class TlsConnection(urllib3.connection.HTTPSConnection):
        def _new_conn(self):
            resolved_allowed(self._dns_host, self.port)
            sock = super()._new_conn()
            check(self._dns_host, sock)
            return sock

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Connection

    class TlsPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = TlsConnection

    adapter = requests.adapters.HTTPAdapter(max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TlsPool}
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session

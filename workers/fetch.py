"""Image fetching with guarantee 5: no URL may reach an internal address, no file may exhaust memory.

- ``s3://bucket/key`` through the ``minio`` client (the object store named in the settings).
- ``http(s)://`` only to allow-listed hosts. Every address a host name resolves to must be public
  (no loopback, private, link-local, multicast or reserved range) unless private addresses are
  allowed; the check happens in the resolver that the connection itself uses, so DNS rebinding
  cannot slip past it, and redirects are followed by hand, each hop checked again.
- ``file://`` only when enabled, and only under the configured root (symlinks resolved); with no
  root, every ``file://`` URI is refused (``Settings`` refuses that combination too).
- At most ``max_bytes`` are read from any source; a larger object is refused, not truncated.

Transient failures (timeouts, 5xx, connection errors, an object store that is away) are retried
with capped exponential backoff (0.2 s doubling to 5 s, ``workers.runtime.retry.retrying``) for at least ``retries`` tries and until
``retry_budget_s`` has passed, so an outage of the object store shorter than the budget delays
events (the pipeline backs up behind the batch, lag grows) but sends none to the DLQ; only then
is ``FetchError(transient=True)`` raised. Permanent failures (404, forbidden, too large) at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from workers.exceptions import FetchError
from workers.runtime.retry import retrying


@dataclass(frozen=True)
class FetchPolicy:
    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    allow_file: bool = False
    file_root: Path | None = None
    max_bytes: int = 20_000_000
    timeout_s: float = 10.0
    retries: int = 3
    retry_budget_s: float = 0.0  # keep retrying transient errors until this long after the first try
    concurrency: int = 16
    s3_buckets: tuple[str, ...] = field(default_factory=tuple)  # empty = any bucket on the configured store


def check_address(ip: str, allow_private: bool) -> None:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if allow_private:
        return
    if (addr.is_loopback or addr.is_private or addr.is_link_local or addr.is_multicast or addr.is_reserved
            or addr.is_unspecified or not addr.is_global):
        raise FetchError("forbidden_address", f"{ip} is not a public address")


def check_uri(uri: str, policy: FetchPolicy) -> tuple[str, Any]:
    """Validate the scheme, host and path of ``uri``; return (scheme, parsed)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        if not parts.netloc or not parts.path.strip("/"):
            raise FetchError("bad_uri", f"s3 URI needs a bucket and a key: {uri[:200]}")
        if policy.s3_buckets and parts.netloc not in policy.s3_buckets:
            raise FetchError("forbidden_bucket", f"bucket {parts.netloc!r} is not allowed")
    elif scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        if not host:
            raise FetchError("bad_uri", f"no host in {uri[:200]}")
        if host not in policy.allowed_hosts:
            raise FetchError("forbidden_host", f"host {host!r} is not in the fetch allow-list")
        try:  # a literal address is checked here; names are checked by the resolver at connect time
            check_address(host.strip("[]"), policy.allow_private)
        except ValueError:
            pass
    elif scheme == "file":
        if not policy.allow_file:
            raise FetchError("file_disabled", "file:// URIs are disabled (VITRINE_FETCH_ALLOW_FILE)")
        if policy.file_root is None:
            raise FetchError("forbidden_path", "file:// URIs need a root folder (VITRINE_FETCH_FILE_ROOT); none is set")
    else:
        raise FetchError("unsupported_scheme", f"unsupported URI scheme {scheme!r}")
    return scheme, parts


class ImageFetcher:
    """Fetches image bytes by URI. ``start()`` opens the HTTP session; ``close()`` ends it."""

    def __init__(self, policy: FetchPolicy, s3_client: Any | None = None) -> None:
        self.policy = policy
        self._s3 = s3_client
        self._session: Any = None
        self._sem: asyncio.Semaphore | None = None

    async def start(self) -> ImageFetcher:
        import aiohttp

        resolver = _CheckingResolver(self.policy.allow_private)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=resolver, limit=self.policy.concurrency, use_dns_cache=False),
            timeout=aiohttp.ClientTimeout(total=self.policy.timeout_s),
        )
        self._sem = asyncio.Semaphore(self.policy.concurrency)
        return self

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, uri: str) -> bytes:
        if self._sem is None:
            raise RuntimeError("ImageFetcher: call start() first")
        scheme, parts = check_uri(uri, self.policy)
        # transient errors only; at least ``retries`` tries, and more while the budget lasts
        async for attempt in retrying(f"fetching {uri[:200]}", retry_on=FetchError, when=_is_transient,
                                      first_s=0.2, cap_s=5.0, budget_s=self.policy.retry_budget_s,
                                      min_tries=self.policy.retries):
            with attempt:
                async with self._sem:  # held for one try, not through the wait before the next
                    if scheme == "s3":
                        return await asyncio.to_thread(self._fetch_s3, parts.netloc, parts.path.lstrip("/"))
                    if scheme == "file":
                        return await asyncio.to_thread(self._fetch_file, parts)
                    return await self._fetch_http(uri)
        raise AssertionError("unreachable: retrying() re-raises the last failure")

    # ------------------------------------------------------------------ sources

    def _fetch_s3(self, bucket: str, key: str) -> bytes:
        if self._s3 is None:
            raise FetchError("s3_not_configured", "no object store configured for s3:// URIs")
        from minio.error import S3Error
        from urllib3.exceptions import HTTPError

        try:
            resp = self._s3.get_object(bucket, key)
        except S3Error as exc:
            transient = exc.code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout")
            raise FetchError("s3_" + exc.code.lower(), f"s3://{bucket}/{key}: {exc.code}", transient=transient) from None
        except (HTTPError, OSError) as exc:
            raise FetchError("s3_unavailable", f"object store unavailable: {exc}"[:300], transient=True) from None
        try:
            length = int(resp.headers.get("Content-Length") or 0)
            if length > self.policy.max_bytes:
                raise FetchError("too_large", f"object is {length} bytes, the limit is {self.policy.max_bytes}")
            data = resp.read(self.policy.max_bytes + 1)
        except (HTTPError, OSError) as exc:
            raise FetchError("s3_unavailable", f"object store read failed: {exc}"[:300], transient=True) from None
        finally:
            resp.close()
            resp.release_conn()
        return self._limited(data)

    def _fetch_file(self, parts: Any) -> bytes:
        if self.policy.file_root is None:  # check_uri refuses this first; never read a path unchecked
            raise FetchError("forbidden_path", "file:// URIs need a root folder (VITRINE_FETCH_FILE_ROOT)")
        path = Path(parts.path).resolve()
        root = self.policy.file_root.resolve()
        if not path.is_relative_to(root):
            raise FetchError("forbidden_path", f"{path} is outside the allowed root")
        try:
            size = path.stat().st_size
            if size > self.policy.max_bytes:
                raise FetchError("too_large", f"file is {size} bytes, the limit is {self.policy.max_bytes}")
            with path.open("rb") as fh:
                return self._limited(fh.read(self.policy.max_bytes + 1))
        except FileNotFoundError:
            raise FetchError("not_found", f"no such file: {path}") from None
        except (IsADirectoryError, PermissionError) as exc:
            raise FetchError("unreadable", f"{path}: {exc.strerror}") from None

    async def _fetch_http(self, uri: str) -> bytes:
        import aiohttp

        for _ in range(4):  # the request plus up to three redirects, each checked again
            try:
                async with self._session.get(uri, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        nxt = resp.headers.get("Location", "")
                        uri = str(resp.url.join(__import__("yarl").URL(nxt)))
                        check_uri(uri, self.policy)
                        continue
                    if resp.status >= 500 or resp.status == 429:
                        raise FetchError(f"http_{resp.status}", f"{uri[:200]}: HTTP {resp.status}", transient=True)
                    if resp.status != 200:
                        raise FetchError(f"http_{resp.status}", f"{uri[:200]}: HTTP {resp.status}")
                    if (resp.content_length or 0) > self.policy.max_bytes:
                        raise FetchError("too_large", f"{resp.content_length} bytes, limit {self.policy.max_bytes}")
                    return self._limited(await resp.content.read(self.policy.max_bytes + 1))
            except FetchError:
                raise
            except OSError as exc:
                if _forbidden(exc):
                    raise FetchError("forbidden_address", f"{uri[:200]}: host resolves to a non-public address") from None
                raise FetchError("http_unavailable", f"{uri[:200]}: {exc}"[:300], transient=True) from None
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise FetchError("http_unavailable", f"{uri[:200]}: {exc!r}"[:300], transient=True) from None
        raise FetchError("too_many_redirects", f"{uri[:200]}: more than 3 redirects")

    def _limited(self, data: bytes) -> bytes:
        if len(data) > self.policy.max_bytes:
            raise FetchError("too_large", f"image exceeds {self.policy.max_bytes} bytes")
        if not data:
            raise FetchError("empty", "image is empty")
        return data


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, FetchError) and exc.transient


def _resolver_base() -> type:
    from aiohttp.abc import AbstractResolver

    return AbstractResolver


class ForbiddenAddress(OSError):
    """Raised by the resolver: the host name resolves to an address that may not be fetched."""


def _forbidden(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, ForbiddenAddress):
            return True
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
        seen += 1
    return False


class _CheckingResolver(_resolver_base()):  # type: ignore[misc]
    """An aiohttp resolver that refuses internal addresses: the connection uses only checked IPs."""

    def __init__(self, allow_private: bool) -> None:
        from aiohttp.resolver import DefaultResolver

        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        infos = await self._inner.resolve(host, port, family)
        for info in infos:
            try:
                check_address(info["host"], self._allow_private)
            except FetchError as exc:
                raise ForbiddenAddress(f"{host} resolves to a forbidden address") from exc
        return infos

    async def close(self) -> None:
        await self._inner.close()

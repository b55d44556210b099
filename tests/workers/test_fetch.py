"""URL checks (guarantee 5) and the real fetch paths against a loopback HTTP server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from workers.exceptions import FetchError
from workers.fetch import FetchPolicy, ImageFetcher, check_uri


@pytest.mark.parametrize("uri, reason", [
    ("http://169.254.169.254/latest/meta-data", "forbidden_host"),
    ("gopher://example.com/x", "unsupported_scheme"),
    ("ftp://example.com/x", "unsupported_scheme"),
    ("file:///etc/passwd", "file_disabled"),
    ("s3://bucket-only", "bad_uri"),
])
def test_refused_uris(uri, reason):
    with pytest.raises(FetchError) as err:
        check_uri(uri, FetchPolicy(allowed_hosts=("example.com",)))
    assert err.value.reason == reason


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254", "10.1.2.3", "192.168.0.1", "[::1]", "172.16.0.9"])
def test_internal_literals_refused_even_when_allow_listed(host):
    with pytest.raises(FetchError) as err:
        check_uri(f"http://{host}/a.jpg", FetchPolicy(allowed_hosts=(host.strip("[]"), host)))
    assert err.value.reason == "forbidden_address"


def _serve(handler_map):
    app = web.Application()
    for path, handler in handler_map.items():
        app.router.add_get(path, handler)
    return app


def test_http_fetch_limits_redirects_and_names_resolving_to_loopback(tmp_path: Path):
    async def image(request):
        return web.Response(body=b"\xff\xd8jpeg-bytes")

    async def big(request):
        return web.Response(body=b"x" * 5000)

    async def to_metadata(request):
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data")

    async def main():
        runner = web.AppRunner(_serve({"/a.jpg": image, "/big": big, "/redirect": to_metadata}))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        results = {}
        private = await ImageFetcher(FetchPolicy(allowed_hosts=("127.0.0.1", "localhost"), allow_private=True,
                                                 max_bytes=1000, retries=1)).start()
        results["ok"] = await private.fetch(f"http://127.0.0.1:{port}/a.jpg")
        for name, uri in [("big", f"http://127.0.0.1:{port}/big"), ("redirect", f"http://127.0.0.1:{port}/redirect")]:
            try:
                await private.fetch(uri)
            except FetchError as exc:
                results[name] = exc.reason
        await private.close()
        public_only = await ImageFetcher(FetchPolicy(allowed_hosts=("localhost",), retries=1)).start()
        try:
            await public_only.fetch(f"http://localhost:{port}/a.jpg")  # a name that resolves to loopback
        except FetchError as exc:
            results["loopback_name"] = exc.reason
        await public_only.close()
        await runner.cleanup()
        return results

    r = asyncio.run(main())
    assert r["ok"] == b"\xff\xd8jpeg-bytes"
    assert r["big"] == "too_large"
    assert r["redirect"] == "forbidden_host"
    assert r["loopback_name"] == "forbidden_address"


def test_file_uris_only_under_root(tmp_path: Path):
    (tmp_path / "ok.jpg").write_bytes(b"data")
    outside = tmp_path.parent / "outside.jpg"
    outside.write_bytes(b"secret")

    async def main():
        f = await ImageFetcher(FetchPolicy(allow_file=True, file_root=tmp_path, retries=1)).start()
        out = {"ok": await f.fetch(f"file://{tmp_path}/ok.jpg")}
        for name, uri in [("escape", f"file://{tmp_path}/../outside.jpg"), ("missing", f"file://{tmp_path}/no.jpg")]:
            try:
                await f.fetch(uri)
            except FetchError as exc:
                out[name] = exc.reason
        await f.close()
        return out

    r = asyncio.run(main())
    assert r == {"ok": b"data", "escape": "forbidden_path", "missing": "not_found"}


def test_file_uris_are_refused_without_a_root(tmp_path: Path):
    """allow_file with no root must not mean "any path": the URI check refuses it, and so does the fetch."""
    (tmp_path / "ok.jpg").write_bytes(b"data")
    policy = FetchPolicy(allow_file=True, file_root=None, retries=1)
    with pytest.raises(FetchError) as err:
        check_uri("file:///etc/passwd", policy)
    assert err.value.reason == "forbidden_path" and not err.value.transient

    async def main():
        f = await ImageFetcher(policy).start()
        try:
            await f.fetch(f"file://{tmp_path}/ok.jpg")
        finally:
            await f.close()

    with pytest.raises(FetchError) as err:
        asyncio.run(main())
    assert err.value.reason == "forbidden_path" and not err.value.transient


def test_transient_errors_are_retried_and_permanent_ones_are_not():
    calls = {"flaky": 0, "down": 0, "gone": 0}

    async def flaky(request):  # 503 twice, then the image
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            return web.Response(status=503)
        return web.Response(body=b"\xff\xd8jpeg-bytes")

    async def down(request):
        calls["down"] += 1
        return web.Response(status=503)

    async def gone(request):
        calls["gone"] += 1
        return web.Response(status=404)

    async def main():
        runner = web.AppRunner(_serve({"/flaky": flaky, "/down": down, "/gone": gone}))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        f = await ImageFetcher(FetchPolicy(allowed_hosts=("127.0.0.1",), allow_private=True, retries=3,
                                           retry_budget_s=0.0)).start()
        out = {"flaky": await f.fetch(f"http://127.0.0.1:{port}/flaky")}
        for name in ("down", "gone"):
            try:
                await f.fetch(f"http://127.0.0.1:{port}/{name}")
            except FetchError as exc:
                out[name] = (exc.reason, exc.transient)
        await f.close()
        await runner.cleanup()
        return out

    r = asyncio.run(main())
    assert r == {"flaky": b"\xff\xd8jpeg-bytes", "down": ("http_503", True), "gone": ("http_404", False)}
    assert calls == {"flaky": 3, "down": 3, "gone": 1}  # retries=3 tries of a transient error, one of a permanent

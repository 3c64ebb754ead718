"""The OpenAI-compatible client (bench/http.py, on httpx): an API key never follows a redirect to
another host, base URLs with a scheme it cannot speak are refused when the plugin is configured,
and timeouts and retries behave as before."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cli_helpers import run_cli
from stub_server import embeddings_server, redirect_server

from bench.errors import BenchError
from bench.http import post_json

KEY = "sk-http-test-0123456789abcdef"
PAYLOAD = {"model": "stub-model", "input": ["a", "b"]}


def _post(url, **kw):
    return post_json(url, PAYLOAD, what="embeddings endpoint", api_key_env="HTTP_TEST_KEY", timeout=kw.pop("timeout", 5),
                     max_retries=kw.pop("max_retries", 0), **kw)


@pytest.mark.parametrize("code", [302, 307])
def test_the_key_is_never_sent_to_the_host_a_redirect_names(monkeypatch, code):
    """302 (httpx re-asks with GET) and 307 (the POST again): the second host gets no Authorization."""
    monkeypatch.setenv("HTTP_TEST_KEY", KEY)
    with embeddings_server() as other, redirect_server(other.base_url.replace("127.0.0.1", "localhost") + "/embeddings", code) as first:
        if code == 307:
            body = _post(first.base_url + "/embeddings")
            assert len(body["data"]) == 2  # the redirect was followed
        else:
            with pytest.raises(BenchError) as e:
                _post(first.base_url + "/embeddings")
            assert "HTTP 404" in str(e.value) and KEY not in str(e.value)
    assert first.log == [("POST", "/v1/embeddings", f"Bearer {KEY}")]  # the configured host got the key
    assert len(other.log) == 1 and other.log[0][2] is None, other.log  # the other one did not


def test_a_redirect_to_the_same_host_keeps_the_key(monkeypatch):
    monkeypatch.setenv("HTTP_TEST_KEY", KEY)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers.get("Authorization")))
            moved = self.path == "/old/embeddings"
            data = b"" if moved else json.dumps({"data": []}).encode()
            self.send_response(307 if moved else 200)
            if moved:
                self.send_header("Location", "/v1/embeddings")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert _post(f"http://127.0.0.1:{server.server_port}/old/embeddings") == {"data": []}
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("/old/embeddings", f"Bearer {KEY}"), ("/v1/embeddings", f"Bearer {KEY}")]


@pytest.mark.parametrize("url, message", [
    ("ftp://example.org/v1", "has scheme 'ftp': give an http:// or https:// URL"),
    ("localhost:8000/v1", "has scheme 'localhost'"),
    ("http:///v1", "names no host"),
])
def test_unsupported_base_urls_are_refused_before_any_work(capsys, tmp_path, monkeypatch, url, message):
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    code, _, err = run_cli(capsys, "run", "-a", "bow", "-D", "wordnet:attacker=50,leaked=5,target=10",
                           "-e", f"openai:base_url={url},model=m", "--out", str(tmp_path / "out"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert time.monotonic() - t0 < 30 and not (tmp_path / "out").exists()


def test_slime_base_urls_are_checked_too(host):
    for params in ({"llm_backend": "openai", "base_url": "file:///etc/passwd", "model": "m"},):
        with pytest.raises(BenchError, match="scheme 'file'"):
            host.make("attacks", "slime", params)


def test_timeout_and_retries_are_kept():
    """A 503 with Retry-After is retried after the given delay; a slow answer is a one-line timeout."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(time.monotonic())
            if len(hits) == 1:
                self.send_response(503)
                self.send_header("Retry-After", "0.3")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if len(hits) == 3:
                time.sleep(1.0)
            data = json.dumps({"ok": len(hits)}).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except BrokenPipeError:
                pass  # the client that timed out has gone

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1/embeddings"
    try:
        assert _post(url, max_retries=1, backoff=0.01) == {"ok": 2}
        assert hits[1] - hits[0] >= 0.3
        with pytest.raises(BenchError, match=r"did not answer within 0.2 s: raise timeout="):
            _post(url, timeout=0.2)
        with pytest.raises(BenchError, match="cannot reach embeddings endpoint"):
            _post(f"http://127.0.0.1:{_free_port()}/v1/embeddings")
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

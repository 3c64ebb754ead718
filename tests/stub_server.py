"""A local OpenAI-compatible chat endpoint for tests: replies come from a function of the request."""

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def chat_server(reply):
    """Yield (base_url, seen): ``reply(body) -> str`` answers each POST; ``seen`` collects
    (path, body, Authorization header) of every request."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body, self.headers.get("Authorization")))
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply(body)}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", seen
    finally:
        server.shutdown()


def stub_vector(text: str, dim: int, salt: str = "") -> list[float]:
    """A deterministic pseudo-random vector per (salt, text): a stand-in embedding model."""
    import hashlib

    import numpy as np

    seed = int.from_bytes(hashlib.sha256((salt + text).encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).round(6).tolist()


@contextmanager
def embeddings_server(port: int = 0, **behaviour):
    """Yield a local OpenAI-compatible embeddings server whose behaviour the test sets and may change
    while it runs (``server.behaviour``): ``salt`` (which "model" it runs), ``dim`` (forced
    dimension), ``nan`` (NaN vectors), ``drop`` (one vector fewer than asked), ``echo_key`` (answer
    with an error body that echoes the Authorization header), ``fail_after`` (fail every embeddings
    request after that many), ``models`` (ids listed under /v1/models; None: no such route).
    ``server.log`` collects (path, body, Authorization header)."""
    state = {"salt": "", "dim": None, "nan": False, "drop": False, "echo_key": None, "fail_after": None, "models": ["stub-model"]}
    state.update(behaviour)
    log = []

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            log.append((self.path, None, self.headers.get("Authorization")))
            if self.path.endswith("/models") and state["models"] is not None:
                return self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in state["models"]]})
            self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            auth = self.headers.get("Authorization")
            log.append((self.path, body, auth))
            n_embed = sum(1 for p, b, _ in log if b is not None)
            if state["echo_key"] and (state["fail_after"] is None or n_embed > state["fail_after"]):
                return self._send(state["echo_key"], {"error": {"message": f"bad request; you sent Authorization: {auth}"}})
            if state["fail_after"] is not None and n_embed > state["fail_after"]:
                return self._send(500, {"error": {"message": "overloaded"}})
            dim = state["dim"] or body.get("dimensions") or 16
            texts = body["input"][:-1] if state["drop"] else body["input"]
            vecs = [[float("nan")] * dim if state["nan"] else stub_vector(t, dim, state["salt"]) for t in texts]
            self._send(200, {"object": "list", "model": body["model"],
                             "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)]})

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.behaviour, server.log = state, log
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        server.base_url = f"http://127.0.0.1:{server.server_port}/v1"
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def redirect_server(location: str, code: int = 302):
    """Yield a server answering every request with ``code`` and ``Location: location`` (e.g. another
    host's address); ``server.log`` collects (method, path, Authorization header)."""
    log = []

    class Handler(BaseHTTPRequestHandler):
        def _redirect(self):
            log.append((self.command, self.path, self.headers.get("Authorization")))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(code)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _redirect  # noqa: N815

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.log = log
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        server.base_url = f"http://127.0.0.1:{server.server_port}/v1"
        yield server
    finally:
        server.shutdown()
        server.server_close()

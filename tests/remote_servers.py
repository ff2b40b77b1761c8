"""Loopback servers for the remote-source tests: an HTTP file server with Range support (and
server-side request/byte counters, a 503 once, a file changed mid-run) and moto's S3 server."""

from __future__ import annotations

import contextlib
import hashlib
import html
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit


class Counters:
    """What the server sent: GET requests and body bytes, per path and in all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.by_path: dict[str, int] = {}
        #: S3 server: object GETs of a path answered 503 (SlowDown) this many more times.
        self.fail_next: dict[str, int] = {}
        self.failed = 0
        #: HEAD requests of files, per path (no body; not in ``requests``).
        self.heads: dict[str, int] = {}

    def take_fault(self, path: str) -> bool:
        """Whether this GET of ``path`` is to fail (and count it)."""
        with self.lock:
            if self.fail_next.get(path, 0) > 0:
                self.fail_next[path] -= 1
                self.failed += 1
                return True
        return False

    def add(self, path: str, nbytes: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += nbytes
            self.by_path[path] = self.by_path.get(path, 0) + nbytes

    def add_head(self, path: str) -> None:
        with self.lock:
            self.heads[path] = self.heads.get(path, 0) + 1

    def reset(self) -> None:
        with self.lock:
            self.requests = self.bytes = 0
            self.by_path.clear()
            self.heads.clear()


class RangeServer(ThreadingHTTPServer):
    """Serves ``root`` read-only on 127.0.0.1 with byte ranges; see :class:`_Handler`."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.counters = Counters()
        self.fail_next: dict[str, int] = {}  # path -> how many GETs to answer 503
        self.change_after: tuple[str, int] | None = None  # (path, after this many GETs of it)
        self.gets: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer

    def log_message(self, *args: object) -> None:
        pass

    def _target(self) -> Path | None:
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        p = (self.server.root / rel).resolve()
        if self.server.root.resolve() not in (p, *p.parents):
            return None
        return p

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        p = self._target()
        if p is None or not p.exists():
            self.send_error(404)
            return
        if p.is_dir():
            self._listing(p, head)
            return
        rel = p.relative_to(self.server.root.resolve()).as_posix()
        if not head and self._fault(rel, p):
            return
        st = p.stat()
        size = st.st_size
        etag = hashlib.md5(f"{size}-{st.st_mtime_ns}".encode()).hexdigest()
        start, end, status = 0, size, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a) if a else max(0, size - int(b))
            end = min(size, int(b) + 1) if (a and b) else size
            status = 206
        with open(p, "rb") as f:
            f.seek(start)
            body = f.read(end - start) if not head else b""
        self.send_response(status)
        self.send_header("Content-Length", str(end - start))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if not head:
            self.server.counters.add(rel, len(body))
            self.wfile.write(body)
        else:
            self.server.counters.add_head(rel)

    def _fault(self, rel: str, p: Path) -> bool:
        """503 once (or as often as asked); rewrite the file after N GETs of it."""
        srv = self.server
        with srv.lock:
            srv.gets[rel] = srv.gets.get(rel, 0) + 1
            if (
                srv.change_after
                and srv.change_after[0] == rel
                and srv.gets[rel] > srv.change_after[1]
            ):
                srv.change_after = None
                with open(p, "ab") as f:
                    f.write(b"\0" * 512)  # a new version: bigger, other ETag
            if srv.fail_next.get(rel, 0) > 0:
                srv.fail_next[rel] -= 1
                self.send_error(503)
                return True
        return False

    def _listing(self, p: Path, head: bool) -> None:
        base = urlsplit(self.path).path.rstrip("/") + "/"
        items = []
        for child in sorted(p.iterdir()):
            name = child.name + ("/" if child.is_dir() else "")
            items.append(f'<a href="{base}{quote(name)}">{html.escape(name)}</a>')
        body = ("<html><body>" + "\n".join(items) + "</body></html>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


@contextlib.contextmanager
def range_server(root: Path) -> Iterator[RangeServer]:
    """An HTTP server for ``root`` on loopback, stopped on exit."""
    srv = RangeServer(root)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class _CountingApp:
    """WSGI middleware around moto: counts object GETs and the bytes of their bodies."""

    def __init__(self, app: object, counters: Counters) -> None:
        self.app, self.counters = app, counters

    def __call__(self, environ: dict, start_response: object) -> Iterator[bytes]:
        read = environ.get("REQUEST_METHOD") == "GET" and not environ.get("QUERY_STRING")
        if read and self.counters.take_fault(environ.get("PATH_INFO", "")):
            xml = (
                b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
            )
            headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))]
            start_response("503 Slow Down", headers)  # type: ignore[operator]
            return iter([xml])  # a real 503 on the wire, before moto sees the request
        body = self.app(environ, start_response)  # type: ignore[operator]
        if not read:
            return body  # object reads only (a listing is ?list-type=2)
        chunks = list(body)
        self.counters.add(environ.get("PATH_INFO", ""), sum(len(c) for c in chunks))
        return iter(chunks)


@contextlib.contextmanager
def s3_server() -> Iterator[tuple[str, Counters]]:
    """moto's S3 server on loopback, counting what it sends; yields (endpoint URL, counters).
    The caller sets the fake credentials in the environment."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    counters = Counters()

    class Server(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = _CountingApp(DomainDispatcherApplication(create_backend_app), counters)
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    port = free_port()
    server = Server(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", counters
    finally:
        server.stop()


def upload_tree(root: Path, endpoint: str, bucket: str, prefix: str = "") -> None:
    """Copy every file under root into s3://bucket/prefix/ (boto3, straight to the server)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            key = "/".join(x for x in (prefix, p.relative_to(root).as_posix()) if x)
            s3.upload_file(str(p), bucket, key)

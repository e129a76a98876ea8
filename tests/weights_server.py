"""A web server on 127.0.0.1 for the named-weights tests: it serves checkpoints the tests generate,
and can fail the ways a real download fails (HTTP errors, a connection dropped mid-file, a
transfer that stalls)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
import time
from pathlib import Path

import keras_preact.weights as weights_lib


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        server: Server = self.server.owner  # type: ignore[attr-defined]
        name = self.path.lstrip("/")
        server.requests.append(name)
        mode = server.faults.get(name, "ok")
        body = server.files.get(name)
        if isinstance(mode, int):
            self.send_error(mode)
            return
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "drop":  # half the file, then the connection closes
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "stall":  # half the file, then nothing until released
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            server.release.wait(60)
            return
        if mode == "slow":  # the whole file, slowly: another process asks meanwhile
            step = max(1, len(body) // 20)
            for i in range(0, len(body), step):
                self.wfile.write(body[i : i + step])
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.wfile.write(body)


class Server:
    """A threaded HTTP server: ``files`` (name -> bytes), ``faults`` (name -> ``"drop"``,
    ``"stall"``, ``"slow"`` or an HTTP status), and the ``requests`` it received."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, object] = {}
        self.requests: list[str] = []
        self.release = threading.Event()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.release.set()
            self.httpd.shutdown()
            self.httpd.server_close()
            self.running = False

    def publish(self, qualified: str, model: str, path: Path, monkeypatch):
        """Serve ``path`` as the file of the table's entry ``qualified`` for ``model``, the table
        pointed at this server with the hash the source would publish for it; the new entry."""
        data = Path(path).read_bytes()
        old = next(e for e in weights_lib.ENTRIES if (e.qualified, e.model) == (qualified, model))
        if old.hash_kind == "md5":
            digest = hashlib.md5(data).hexdigest()
        elif old.hash_kind == "sha256-prefix":
            digest = hashlib.sha256(data).hexdigest()[:8]
        else:
            digest = old.file_hash
        new = dataclasses.replace(old, url=f"{self.url}/{old.file_name}", file_hash=digest)
        self.files[old.file_name] = data
        monkeypatch.setattr(
            weights_lib, "ENTRIES", tuple(new if e is old else e for e in weights_lib.ENTRIES)
        )
        return new

"""Real servers the tests start on loopback: an XRootD server and an HTTP server that honours ranges.

The XRootD server is Debian's ``xrootd`` (package ``xrootd-server``, installed by ``make test``).
It refuses to run as root, so it is started as the unprivileged user ``nobody`` (``runuser``) when
the tests run as root; the directory it exports is made world-readable. With ``writable=True`` the
export is declared ``r/w`` and the directory is handed to the server's user (``nobody``), so clients
(fsspec-xrootd) write files there; otherwise it is exported ``r/o``.

The HTTP server is the standard library's, with ``Range: bytes=a-b`` answered by ``206 Partial
Content`` (what uproot's and fsspec's HTTP sources send); it serves a directory read-only.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

XROOTD_INSTALL_HINT = "install Debian's xrootd-server (`make system-deps`, run by `make test`)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            detail = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}: {detail}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def world_readable_dir(prefix: str) -> Path:
    """A fresh directory under the system temp dir that another user (the XRootD server) can read."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class XRootDServer:
    """A running ``xrootd`` exporting ``root`` on ``port``; ``url(path)`` gives a file's ``root://`` URL."""

    def __init__(self, root: Path, port: int, proc: subprocess.Popen, workdir: Path) -> None:
        self.root, self.port, self.proc, self.workdir = root, port, proc, workdir

    def url(self, path: str | Path) -> str:
        """``root://127.0.0.1:PORT//abs/path`` of a file under the exported directory."""
        return f"root://127.0.0.1:{self.port}/{Path(path).resolve()}"

    def stop(self) -> None:
        """Stop the server (a second call does nothing)."""
        if self.proc.poll() is None:
            # the server runs as another user through runuser: signal the whole process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)


def _start_xrootd(binary: str, root: Path, *, writable: bool = False) -> XRootDServer:
    """One start of ``xrootd`` on a fresh port and admin directory; raises if it dies before listening."""
    workdir = world_readable_dir("cms-anomaly-xrootd-")
    port = free_port()
    config = workdir / "xrootd.cfg"
    mode = "r/w" if writable else "r/o"
    config.write_text(f"all.export {root} {mode}\nxrd.port {port}\nall.adminpath {workdir / 'admin'}\n")
    (workdir / "admin").mkdir()
    command = [binary, "-c", str(config), "-l", str(workdir / "admin" / "xrootd.log"), "-n", "test"]
    command += ["-a", str(workdir / "admin"), "-w", str(workdir / "admin")]
    if os.geteuid() == 0:  # xrootd refuses root: run it as nobody, which must own its admin directory
        shutil.chown(workdir / "admin", user="nobody")
        command = ["runuser", "-u", "nobody", "--", *command]
    log = workdir / "stdout.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = XRootDServer(root, port, proc, workdir)
    try:
        _wait_for_port(port, timeout=20, proc=proc, log=log)
    except BaseException:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return server


# Debian's xrootd 5 segfaults during start-up in about 1 start of 20 on this machine (measured: 3 of 40
# starts, the log empty, stdout "Segmentation fault"); a start that dies before listening is retried.
XROOTD_START_ATTEMPTS = 4


@contextlib.contextmanager
def xrootd_server(root: Path, *, writable: bool = False) -> Iterator[XRootDServer]:
    """Start Debian's ``xrootd`` on a free loopback port exporting ``root``: read-only, or with
    ``writable`` read-write (``root`` then belongs to the server's user)."""
    binary = shutil.which("xrootd")
    if binary is None:
        raise RuntimeError(f"no xrootd on PATH: {XROOTD_INSTALL_HINT}")
    root = Path(root).resolve()
    if writable and os.geteuid() == 0:  # the server runs as nobody: it must own what it writes into
        shutil.chown(root, user="nobody")
    for attempt in range(XROOTD_START_ATTEMPTS):
        try:
            server = _start_xrootd(binary, root, writable=writable)
            break
        except RuntimeError:
            if attempt == XROOTD_START_ATTEMPTS - 1:
                raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """GET with ``Range: bytes=a-b`` answered by 206 and the slice; HEAD and whole GETs as usual."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, last = match.groups()
        if first == "":  # suffix range: the last N bytes
            start, stop = max(size - int(last), 0), size - 1
        else:
            start, stop = int(first), min(int(last) if last else size - 1, size - 1)
        if start >= size or start > stop:
            self.send_error(416, "Requested Range Not Satisfiable")
            return None
        f = path.open("rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
        self.send_header("Content-Length", str(stop - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = stop - start + 1
        return f

    def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(remaining))
        self._remaining = None
        return None


class RangeHTTPServer:
    """A running HTTP server; ``url(path)`` gives a file's ``http://`` URL."""

    def __init__(self, root: Path, server: http.server.ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.root, self.server, self.thread = root, server, thread
        self.port = int(server.server_address[1])

    def url(self, path: str | Path) -> str:
        return f"http://127.0.0.1:{self.port}/{Path(path).resolve().relative_to(self.root)}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@contextlib.contextmanager
def range_http_server(root: Path) -> Iterator[RangeHTTPServer]:
    """Serve ``root`` over HTTP on a free loopback port, honouring byte ranges."""
    import functools

    root = Path(root).resolve()
    handler = functools.partial(_RangeHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    running = RangeHTTPServer(root, server, thread)
    try:
        yield running
    finally:
        running.stop()

"""npm's s3rver (pinned in ``.ci/node/package.json``) as a test S3 server beside moto (issue 21).

s3rver is an S3 server many teams test against, and one that does not honour conditional writes
(``If-None-Match`` on ``PutObject``), nor ``ListMultipartUploads`` (``NotImplemented``) nor
``AbortMultipartUpload`` (``MethodNotAllowed``). :func:`start_s3rver` starts it on a free port over a temp
folder, waits until it answers, and :meth:`S3rver.stop` kills its process group. ``.ci/run`` installs it
(``npm ci --prefix .ci/node``); the fixture skips when Node.js or the package is missing, unless
``GLUEFLOW_REQUIRE_S3RVER=1`` (set by ``.ci/run``), which fails instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

#: s3rver's fixed credentials (it checks signatures against them).
ACCESS_KEY = SECRET_KEY = "S3RVER"
S3RVER_BIN = Path(__file__).parents[2] / ".ci" / "node" / "node_modules" / ".bin" / "s3rver"


@dataclass
class S3rver:
    """A running s3rver: its endpoint, its process and its data folder."""

    endpoint: str
    process: subprocess.Popen[bytes]
    directory: Path
    port: int

    def stop(self) -> None:
        """Kill the server's process group (npm's shim and node) and wait for it; the data folder stays."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def restart(self) -> None:
        """Start it again on the same port over the same data (a server back after an outage)."""
        self.stop()
        self.process = _spawn(self.directory, self.port)
        _wait_ready(self)


def missing_reason() -> str | None:
    """Why s3rver cannot start here, or None."""
    if shutil.which("node") is None:
        return "Node.js not found (apt-get install nodejs npm)"
    if not S3RVER_BIN.exists():
        return f"s3rver not installed at {S3RVER_BIN} (npm ci --prefix .ci/node)"
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("GLUEFLOW_REQUIRE_S3RVER"):  # set by .ci/run: there it must be installed
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(directory: Path, port: int) -> subprocess.Popen[bytes]:
    # The legacy OpenSSL provider: an earlier set-up on Node 20 needed it for s3rver (Node 17+ moved old
    # hashes there); harmless where it is not needed (Node 20.20 here runs the suite without it too).
    env = {**os.environ, "NODE_OPTIONS": "--openssl-legacy-provider"}
    return subprocess.Popen(
        [str(S3RVER_BIN), "-d", str(directory), "-a", "127.0.0.1", "-p", str(port), "-s"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: stop() kills npm's shim and node together
    )


def _wait_ready(server: S3rver, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            err = server.process.stderr.read().decode(errors="replace") if server.process.stderr else ""
            raise RuntimeError(f"s3rver exited with {server.process.returncode}: {err.strip()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"s3rver did not listen on port {server.port} within {timeout_s:g} s")


def start_s3rver() -> S3rver:
    """Start s3rver on a free port over a new temp folder; the caller stops it."""
    reason = missing_reason()
    if reason is not None:
        skip_or_fail(reason)
    directory = Path(tempfile.mkdtemp(prefix="glueflow-s3rver-"))
    port = _free_port()
    server = S3rver(f"http://127.0.0.1:{port}", _spawn(directory, port), directory, port)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return server


def s3rver_client(endpoint: str) -> object:
    """A boto3 client for s3rver (its credentials, path-style, botocore's standard retries)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
    )

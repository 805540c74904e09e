"""A standalone Spark cluster for the tests: one master and two workers, started from the pyspark package.

``bin/spark-class org.apache.spark.deploy.master.Master`` and ``...deploy.worker.Worker`` with
``SPARK_HOME`` set to pyspark's own folder (its ``jars/`` hold everything a standalone cluster needs).
Each process runs in its own process group and session, so :meth:`SparkCluster.kill_worker` ends a worker
with its executor and that executor's Python workers (a lost machine), and :meth:`SparkCluster.stop` ends
everything the cluster started. Workers inherit this process's environment (the moto server's endpoint
and fake credentials, set by the ``moto_server`` fixture) and get their own work directory each.

:func:`run_driver` runs the stage script's ``run`` as its own driver process against the cluster, with a
botocore event hook installed in that process only: every S3 call the driver makes is recorded (the
executors' calls are made in other processes and are not), so a test can show the driver reads and writes
no data.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

#: Driver process: records the S3 calls it makes (operation, key) and runs the stage script's ``run``.
_DRIVER = """
import json, sys
import boto3
calls = []
boto3.setup_default_session()
def record(model, params, **_):
    calls.append([model.name, params.get("Key")])
boto3.DEFAULT_SESSION.events.register("before-parameter-build.s3", record)
from glueflow_dagster.spark.stage_script import run
extras = json.load(open(sys.argv[1]))
figures = run(extras, lambda message: print(message, file=sys.stderr))
json.dump({"figures": figures, "calls": calls}, open(sys.argv[2], "w"))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


class SparkCluster:
    """A master and ``workers`` workers (``cores`` each) on 127.0.0.1; ``url`` is the master's."""

    def __init__(self, workdir: Path, workers: int = 2, cores: int = 1, memory: str = "1g") -> None:
        self.workdir = workdir
        self.workers = workers
        self.cores = cores
        self.memory = memory
        self.port = _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.master: subprocess.Popen[bytes] | None = None
        self.worker_processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []

    def _env(self) -> dict[str, str]:
        home = spark_home()
        return {
            **os.environ,
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.workdir / "logs"),
            "SPARK_NO_DAEMONIZE": "1",
            "PYSPARK_PYTHON": sys.executable,
        }

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
        self._logs.append(log)
        command = [str(spark_home() / "bin" / "spark-class"), *args]
        return subprocess.Popen(
            command, env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir
        )

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout_s: float = 120) -> SparkCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.master = self._start(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--webui-port",
            str(_free_port()),
        )
        for index in range(self.workers):
            work = self.workdir / f"worker-{index}"
            work.mkdir(exist_ok=True)
            self.worker_processes.append(
                self._start(
                    f"worker-{index}",
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(self.cores),
                    "--memory",
                    self.memory,
                    "--work-dir",
                    str(work),
                    "--webui-port",
                    str(_free_port()),
                    self.url,
                )
            )
        deadline = time.monotonic() + timeout_s
        while self.log("master").count("Registering worker") < self.workers:
            if time.monotonic() > deadline or self.master.poll() is not None:
                self.stop()
                raise RuntimeError(f"the Spark cluster did not start: {self.log('master')[-2000:]}")
            time.sleep(0.5)
        return self

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker's process group: the worker, its executor and the executor's Python workers."""
        process = self.worker_processes[index]
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in [*self.worker_processes, *([self.master] if self.master else [])]:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.worker_processes, *([self.master] if self.master else [])]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)
        for log in self._logs:
            log.close()


def start_driver(extras: dict[str, Any], workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """The stage script's ``run`` as a driver process of its own (see the module's doc); returns the process
    and the file its result lands in (``{"figures": ..., "calls": [[operation, key], ...]}``)."""
    root = str(Path(__file__).resolve().parents[2])
    extras_path, result_path = workdir / "extras.json", workdir / "result.json"
    extras_path.write_text(json.dumps(extras))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    log = open(workdir / "driver.log", "wb")  # noqa: SIM115 (closed with the process by wait_driver)
    process = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(extras_path), str(result_path)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return process, result_path


def wait_driver(process: subprocess.Popen[bytes], result_path: Path, timeout_s: float = 600) -> dict[str, Any]:
    try:
        process.wait(timeout=timeout_s)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    if process.returncode != 0 or not result_path.exists():
        log = (result_path.parent / "driver.log").read_text(errors="replace")
        raise RuntimeError(f"the driver failed ({process.returncode}): {log[-3000:]}")
    return dict(json.loads(result_path.read_text()))

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

    def __init__(
        self, workdir: Path, workers: int = 2, cores: int = 1, memory: str = "1g", env: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.env = dict(env or {})  # more environment for the master and workers (their executors inherit it)
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
            **self.env,
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
            self.worker_processes.append(self._start_worker(index))
        self._wait_registered(self.workers, timeout_s)
        return self

    def _start_worker(self, index: int) -> subprocess.Popen[bytes]:
        work = self.workdir / f"worker-{index}"
        work.mkdir(exist_ok=True)
        return self._start(
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

    def _wait_registered(self, count: int, timeout_s: float) -> None:
        """Until the master's log shows ``count`` worker registrations (restarted workers register again)."""
        assert self.master is not None
        deadline = time.monotonic() + timeout_s
        while self.log("master").count("Registering worker") < count:
            if time.monotonic() > deadline or self.master.poll() is not None:
                self.stop()
                raise RuntimeError(f"the Spark cluster did not start: {self.log('master')[-2000:]}")
            time.sleep(0.5)

    def ensure_workers(self, timeout_s: float = 120) -> None:
        """Start again every worker that has died (a test killed it), and wait until it has registered."""
        dead = [index for index, process in enumerate(self.worker_processes) if process.poll() is not None]
        if not dead:
            return
        registered = self.log("master").count("Registering worker")
        for index in dead:
            self.worker_processes[index] = self._start_worker(index)
        self._wait_registered(registered + len(dead), timeout_s)

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


def _wait_or_end_group(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait for a driver started in a process group of its own; on a timeout (or any error) end the group."""
    try:
        process.wait(timeout=timeout_s)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def wait_driver(process: subprocess.Popen[bytes], result_path: Path, timeout_s: float = 600) -> dict[str, Any]:
    _wait_or_end_group(process, timeout_s)
    if process.returncode != 0 or not result_path.exists():
        log = (result_path.parent / "driver.log").read_text(errors="replace")
        raise RuntimeError(f"the driver failed ({process.returncode}): {log[-3000:]}")
    return dict(json.loads(result_path.read_text()))


def package_root() -> str:
    """The folder holding this checkout's ``glueflow_dagster`` (what a job's Python modules would install)."""
    return str(Path(__file__).resolve().parents[2])


def submit_command(master: str, script: Path, arguments: list[str], memory: str = "512m") -> list[str]:
    """``spark-submit`` of ``script`` to the cluster at ``master``, as Glue and EMR Serverless start a job's
    driver: the master and the Python of driver and executors come from the submission, not from the
    script (which sets no master on these launchers). The executors get this checkout on their PYTHONPATH,
    standing in for Glue's ``--additional-python-modules`` and EMR's virtualenv archive."""
    return [
        str(spark_home() / "bin" / "spark-submit"),
        "--master",
        master,
        "--driver-memory",
        memory,
        "--conf",
        f"spark.executor.memory={memory}",
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--conf",
        f"spark.executorEnv.PYTHONPATH={package_root()}",
        str(script),
        *arguments,
    ]


def submit_env(more: dict[str, str] | None = None) -> dict[str, str]:
    """The driver's environment for :func:`submit_command`: this process's, the checkout on PYTHONPATH."""
    return {**os.environ, "SPARK_HOME": str(spark_home()), **(more or {}), "PYTHONPATH": package_root()}


class ClusterGlueClient:
    """A Glue client for the moto server that also runs the job's script on a standalone cluster, the way
    the Glue service runs it on its workers.

    moto accepts StartJobRun but runs nothing: this client starts the run in moto, downloads the job's
    ScriptLocation from S3 and submits it to ``master`` with the run's arguments (Glue passes job arguments
    as ``--key value`` after the script), then reports SUCCEEDED or FAILED from the driver's exit.
    Everything else goes to moto.
    """

    def __init__(self, glue: Any, s3: Any, workdir: Path, master: str) -> None:
        self._glue, self._s3, self._workdir, self.master = glue, s3, workdir, master
        self.exceptions = glue.exceptions
        self.states: dict[str, str] = {}
        self.argv: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._glue, name)

    def start_job_run(self, JobName: str, Arguments: dict[str, str] | None = None, **kwargs: Any) -> dict[str, str]:  # noqa: N803
        job = self._glue.get_job(JobName=JobName)["Job"]
        run_id = self._glue.start_job_run(JobName=JobName, Arguments=Arguments or {}, **kwargs)["JobRunId"]
        bucket, _, key = job["Command"]["ScriptLocation"].removeprefix("s3://").partition("/")
        script = self._workdir / f"{run_id}.py"
        script.write_bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        arguments = {**job.get("DefaultArguments", {}), **(Arguments or {}), "--JOB_NAME": JobName}
        argv = submit_command(self.master, script, [part for pair in arguments.items() for part in pair])
        self.argv.append(argv)
        self.states[run_id] = _run_driver(argv, submit_env(), self._workdir / f"{run_id}.log")
        return {"JobRunId": run_id}

    def get_job_run(self, JobName: str, RunId: str, **_kwargs: Any) -> dict[str, Any]:  # noqa: N803
        state = "SUCCEEDED" if self.states[RunId] == "ok" else "FAILED"
        return {"JobRun": {"Id": RunId, "JobName": JobName, "JobRunState": state}}


class ClusterEMRServerlessClient:
    """An EMR Serverless client for the moto server that also runs the job's entry point on a standalone
    cluster, as the service runs it on its workers.

    The run is recorded in moto; the entry point is downloaded from S3 and submitted to ``master`` with its
    arguments and the driver environment the ``spark.emr-serverless.driverEnv.*`` confs ask for.
    """

    def __init__(self, emr: Any, s3: Any, workdir: Path, master: str) -> None:
        self._emr, self._s3, self._workdir, self.master = emr, s3, workdir, master
        self.states: dict[str, str] = {}
        self.env: list[dict[str, str]] = []
        self.argv: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._emr, name)

    def start_job_run(self, **params: Any) -> dict[str, Any]:
        started = self._emr.start_job_run(**params)
        submit = params["jobDriver"]["sparkSubmit"]
        bucket, _, key = submit["entryPoint"].removeprefix("s3://").partition("/")
        script = self._workdir / f"{started['jobRunId']}.py"
        script.write_bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        driver_env = {}
        for conf in submit.get("sparkSubmitParameters", "").split("--conf"):
            name, _, value = conf.strip().partition("=")
            if name.startswith("spark.emr-serverless.driverEnv."):
                driver_env[name.removeprefix("spark.emr-serverless.driverEnv.")] = value
        self.env.append(driver_env)
        argv = submit_command(self.master, script, list(submit.get("entryPointArguments", [])))
        self.argv.append(argv)
        log = self._workdir / f"{started['jobRunId']}.log"
        self.states[started["jobRunId"]] = _run_driver(argv, submit_env(driver_env), log)
        return dict(started)

    def get_job_run(self, applicationId: str, jobRunId: str) -> dict[str, Any]:  # noqa: N803
        state = "SUCCESS" if self.states[jobRunId] == "ok" else "FAILED"
        return {"jobRun": {"applicationId": applicationId, "jobRunId": jobRunId, "state": state}}

    def get_application(self, applicationId: str) -> dict[str, Any]:  # noqa: N803
        # moto takes and reports the type as "SPARK"; the service (and dagster-aws) spell it "Spark".
        answer = dict(self._emr.get_application(applicationId=applicationId))
        answer["application"]["type"] = answer["application"]["type"].capitalize()
        return answer

    def get_dashboard_for_job_run(self, **_kwargs: Any) -> dict[str, str]:
        return {"url": "http://localhost/dashboard"}


def _run_driver(argv: list[str], env: dict[str, str], log_path: Path, timeout_s: float = 900) -> str:
    """Run a submitted driver to its end in a process group of its own (ended whole on a timeout);
    ``"ok"`` or ``"failed"``, its output in ``log_path``."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_or_end_group(process, timeout_s)
    return "ok" if process.returncode == 0 else "failed"

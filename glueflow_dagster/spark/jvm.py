"""The local launcher's driver JVM: a class archive of Spark's classes (Java's AppCDS), kept between runs.

A stage on the local launcher starts a JVM, and that JVM loads and verifies several thousand classes of
Spark's jars before the first task runs: about 4 CPU seconds on every stage (measured in docs/spark.md).
Java can archive the classes a run loaded (``-XX:ArchiveClassesAtExit``) and map the archive into the
next JVM (``-XX:SharedArchiveFile``), which then skips that work. The first stage of a Java and pyspark
pair writes the archive when its JVM exits (into a name of its own, renamed into place once complete);
every later stage maps it. Java checks that the archive belongs to the JVM and the class path and runs
without it (``-Xshare:auto``) when it does not, so a stale or missing archive only costs the CPU.

Where: ``$GLUEFLOW_SPARK_CLASS_ARCHIVE_DIR``, else ``$XDG_CACHE_HOME/glueflow/spark-classes``, else
``~/.cache/glueflow/spark-classes``; ``GLUEFLOW_SPARK_CLASS_ARCHIVE_DIR=off`` turns the archive off.
Only the local launcher's driver uses it (Glue and EMR start their own JVMs).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

ENV = "GLUEFLOW_SPARK_CLASS_ARCHIVE_DIR"
#: Java reports every class it cannot archive (hundreds, at the exit) and a mismatched archive: not the run's news.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def _java() -> str | None:
    """The java pyspark starts (``$JAVA_HOME/bin/java``, else the one on PATH), resolved."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return os.path.realpath(found) if found and os.path.exists(found) else None


def archive_path() -> Path | None:
    """This Java's and pyspark's class archive (existing or not), or None when turned off or unknown."""
    setting = os.environ.get(ENV, "")
    if setting.lower() == "off":
        return None
    java = _java()
    if java is None:
        return None
    try:
        import pyspark
    except ImportError:
        return None
    jars = Path(pyspark.__file__).parent / "jars"
    stamp = f"{java}|{os.stat(java).st_mtime_ns}|{pyspark.__version__}|{jars}|{_mtime(jars)}"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "glueflow" / "spark-classes"
    return (Path(setting) if setting else cache) / f"spark-{pyspark.__version__}-{key}.jsa"


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def java_options(archive: Path | None) -> tuple[str, Path | None]:
    """The driver JVM's options for ``archive`` and the file a new archive is written to at the JVM's exit
    (None when the archive exists, or cannot be written)."""
    if archive is None:
        return "", None
    if archive.is_file() and archive.stat().st_size > 0:
        return f"-XX:SharedArchiveFile={archive} -Xshare:auto {QUIET}", None
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return "", None
    if not os.access(archive.parent, os.W_OK):
        return "", None
    _remove_stale(archive.parent)
    pending = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
    return f"-XX:ArchiveClassesAtExit={pending} {QUIET}", pending


def _remove_stale(folder: Path, age_s: float = 86_400.0) -> None:
    """Archives a killed JVM left half-written (a day old: no JVM takes that long to exit)."""
    import time

    for leftover in folder.glob("*.jsa.*.tmp"):
        try:
            if time.time() - leftover.stat().st_mtime > age_s:
                leftover.unlink()
        except OSError:
            continue


def keep_archive(pending: Path | None, archive: Path | None) -> bool:
    """Once the JVM that wrote ``pending`` has exited: move it into place (atomically; a concurrent run's
    archive is as good). False, and nothing left behind, when there is none."""
    if pending is None or archive is None:
        return False
    try:
        if pending.is_file() and pending.stat().st_size > 0:
            os.replace(pending, archive)
            return True
    except OSError:
        pass
    pending.unlink(missing_ok=True)
    return False


def end_gateway_jvm(timeout_s: float = 120.0) -> None:
    """End the py4j gateway's JVM (after ``SparkSession.stop()``) and wait for it to exit, so what it writes
    at its exit (the class archive) is complete. Its stdin closing is what ends it."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if gateway is None or proc is None:  # a JVM this process did not start (spark-submit's) is left alone
        return
    gateway.shutdown()
    if proc.stdin is not None:
        proc.stdin.close()
    proc.wait(timeout=timeout_s)
    SparkContext._gateway = None
    SparkContext._jvm = None

"""DuckDB's own Iceberg reader (``iceberg_scan``) for the tests, in a child process (issue 24 item 3).

The project's DuckDB (2.0.1, constraints.txt) has no Iceberg extension it can load: DuckDB downloads its
extensions from its own server, which the project's machines cannot reach, and the registry's extension
wheels (``duckdb-extension-iceberg``, ``-avro``, ``-httpfs``) go up to 1.5.5, which DuckDB 2 refuses.
So ``.ci/run`` installs DuckDB 1.5.5 with those extensions into :data:`DUCKDB_ICEBERG_DIR`
(``pip install --target .ci/duckdb-iceberg``, git-ignored), and :func:`iceberg_scan` runs a child Python
that puts that folder first on its path, LOADs the extension files by path (no download; httpfs for a
table on S3 only) and reads ``iceberg_scan('<metadata.json>')``, the table's current metadata file.

Missing folder: the test skips with the reason, unless ``GLUEFLOW_REQUIRE_DUCKDB_ICEBERG=1`` (set by
``.ci/run``), which fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DUCKDB_VERSION = "1.5.5"
DUCKDB_ICEBERG_DIR = Path(__file__).parents[2] / ".ci" / "duckdb-iceberg"
INSTALL = (
    f"python3 -m pip install --target .ci/duckdb-iceberg duckdb=={DUCKDB_VERSION} "
    f"duckdb-extension-iceberg=={DUCKDB_VERSION} duckdb-extension-avro=={DUCKDB_VERSION} "
    f"duckdb-extension-httpfs=={DUCKDB_VERSION}"
)

EXTENSIONS = ("avro", "iceberg", "httpfs")  # httpfs: a table on S3 only (the moto server of the tests)

# The child: DuckDB 1.5.5 from the folder, the extensions loaded by path, one query, its rows as JSON. A
# table on S3 is read through httpfs with an S3 secret of the endpoint and keys in the environment
# (AWS_ENDPOINT_URL, as boto3 and the runs take them: the tests' moto server, path-style, no TLS).
_CHILD = """
import json, os, sys
folder, query, version, s3 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "s3"
sys.path.insert(0, folder)
import duckdb
assert duckdb.__version__ == version, (duckdb.__version__, duckdb.__file__)
con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
for name in ("avro", "iceberg", "httpfs") if s3 else ("avro", "iceberg"):
    con.execute(f"LOAD '{folder}/duckdb_extension_{name}/extensions/v{version}/{name}.duckdb_extension'")
if s3:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    con.execute(
        "CREATE SECRET s3 (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
        [
            os.environ["AWS_ACCESS_KEY_ID"],
            os.environ["AWS_SECRET_ACCESS_KEY"],
            os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint.split("://", 1)[-1],
            endpoint.startswith("https://"),
        ],
    )
print(json.dumps(con.execute(query).fetchall(), default=str))
"""


def extension_file(name: str) -> Path:
    """Where the registry's wheel ``duckdb-extension-<name>`` puts its extension file."""
    return DUCKDB_ICEBERG_DIR / f"duckdb_extension_{name}/extensions/v{DUCKDB_VERSION}/{name}.duckdb_extension"


def missing_reason() -> str | None:
    """Why DuckDB's Iceberg reader cannot run here, or None."""
    for name in EXTENSIONS:
        if not extension_file(name).exists():
            return f"DuckDB {DUCKDB_VERSION}'s {name} extension not installed at {extension_file(name)} ({INSTALL})"
    return None


def require() -> None:
    """Skip (or, with GLUEFLOW_REQUIRE_DUCKDB_ICEBERG set, as .ci/run sets it, fail) when it is missing."""
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("GLUEFLOW_REQUIRE_DUCKDB_ICEBERG"):  # set by .ci/run: there it must be installed
        pytest.fail(reason)
    pytest.skip(reason)


def iceberg_scan(metadata_location: str, columns: str = "*") -> list[tuple[Any, ...]]:
    """The rows of ``SELECT <columns> FROM iceberg_scan('<metadata_location>')`` through DuckDB 1.5.5."""
    require()
    store = "s3" if metadata_location.startswith("s3://") else "local"
    quoted = metadata_location.replace("'", "''")
    query = f"SELECT {columns} FROM iceberg_scan('{quoted}')"
    done = subprocess.run(
        [sys.executable, "-I", "-c", _CHILD, str(DUCKDB_ICEBERG_DIR), query, DUCKDB_VERSION, store],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"DuckDB's iceberg_scan failed on {metadata_location}: {done.stderr.strip()[-2000:]}")
    return [tuple(row) for row in json.loads(done.stdout)]

"""DuckDB's own Iceberg reader (``iceberg_scan``) for the tests, in a child process (issue 24 item 3).

The project's DuckDB (2.0.1, constraints.txt) has no Iceberg extension it can load: DuckDB downloads its
extensions from its own server, which the project's machines cannot reach, and the registry's extension
wheels (``duckdb-extension-iceberg``, ``duckdb-extension-avro``) go up to 1.5.5, which DuckDB 2 refuses.
So ``.ci/run`` installs DuckDB 1.5.5 with those two extensions into :data:`DUCKDB_ICEBERG_DIR`
(``pip install --target .ci/duckdb-iceberg``, git-ignored), and :func:`iceberg_scan` runs a child Python
that puts that folder first on its path, LOADs the two extension files by path (no download, no httpfs:
the tables are local) and reads ``iceberg_scan('<metadata.json>')``, the table's current metadata file.

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
    f"duckdb-extension-iceberg=={DUCKDB_VERSION} duckdb-extension-avro=={DUCKDB_VERSION}"
)

# The child: DuckDB 1.5.5 from the folder, the extensions loaded by path, one query, its rows as JSON.
_CHILD = """
import json, sys
folder, query = sys.argv[1], sys.argv[2]
sys.path.insert(0, folder)
import duckdb
assert duckdb.__version__ == sys.argv[3], (duckdb.__version__, duckdb.__file__)
con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
for name in ("avro", "iceberg"):
    con.execute(f"LOAD '{folder}/duckdb_extension_{name}/extensions/v{sys.argv[3]}/{name}.duckdb_extension'")
print(json.dumps(con.execute(query).fetchall(), default=str))
"""


def extension_file(name: str) -> Path:
    """Where the registry's wheel ``duckdb-extension-<name>`` puts its extension file."""
    return DUCKDB_ICEBERG_DIR / f"duckdb_extension_{name}/extensions/v{DUCKDB_VERSION}/{name}.duckdb_extension"


def missing_reason() -> str | None:
    """Why DuckDB's Iceberg reader cannot run here, or None."""
    for name in ("avro", "iceberg"):
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
    quoted = metadata_location.replace("'", "''")
    query = f"SELECT {columns} FROM iceberg_scan('{quoted}')"
    done = subprocess.run(
        [sys.executable, "-I", "-c", _CHILD, str(DUCKDB_ICEBERG_DIR), query, DUCKDB_VERSION],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"DuckDB's iceberg_scan failed on {metadata_location}: {done.stderr.strip()[-2000:]}")
    return [tuple(row) for row in json.loads(done.stdout)]

"""The Output run's table work before the stage without pyarrow (issue 24 item 7: the peak RSS).

``core.iceberg_schema`` converts the output mapping's polars schema to Iceberg's types as pyiceberg's
Arrow path does; ``core.iceberg_io.StorageFileIO`` reads and writes the table's metadata files through the
output location's storage. Together they let an Output run open (create, evolve) its table and list the
files its snapshots reference with no pyarrow loaded: pyarrow comes with the append, after the stage.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
import yaml
from pyiceberg.catalog import Catalog
from pyiceberg.schema import assign_fresh_schema_ids

from glueflow_dagster.core.iceberg_io import StorageFileIO
from glueflow_dagster.core.iceberg_schema import iceberg_schema
from glueflow_dagster.core.iceberg_table import referenced_files
from glueflow_dagster_tests.conftest import raw_records
from glueflow_dagster_tests.core.test_iceberg_runs import iceberg_flow, table_of
from glueflow_dagster_tests.core.test_job_runs import MemoryCommitLog, _input, _output, _stores

SCHEMAS = {
    "flat": pl.Schema(
        {
            "b": pl.Boolean,
            "i8": pl.Int8,
            "i16": pl.Int16,
            "i32": pl.Int32,
            "u8": pl.UInt8,
            "u16": pl.UInt16,
            "u32": pl.UInt32,
            "i64": pl.Int64,
            "f32": pl.Float32,
            "f64": pl.Float64,
            "s": pl.String,
            "bin": pl.Binary,
            "d": pl.Date,
            "ts": pl.Datetime("us"),
            "tsz": pl.Datetime("us", "UTC"),
            "ts_ms": pl.Datetime("ms", "UTC"),
            "dec": pl.Decimal(12, 3),
        }
    ),
    "nested": pl.Schema(
        {
            "id": pl.Int64,
            "tags": pl.List(pl.String),
            "user": pl.Struct({"id": pl.Int64, "names": pl.List(pl.Struct({"first": pl.String, "n": pl.Int32}))}),
            "matrix": pl.List(pl.List(pl.Float64)),
        }
    ),
    "unknown to the direct path": pl.Schema({"id": pl.Int64, "kind": pl.Categorical()}),
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_the_schema_without_pyarrow_is_the_one_pyiceberg_makes_from_arrow(name: str) -> None:
    schema = SCHEMAS[name]
    by_arrow = Catalog._convert_schema_if_needed(schema.to_arrow())
    assert assign_fresh_schema_ids(iceberg_schema(schema)) == assign_fresh_schema_ids(by_arrow)


def test_an_output_run_opens_its_table_and_lists_its_files_with_no_pyarrow_loaded(tmp_path: Path) -> None:
    """Two Output runs make a table with two snapshots; then a fresh process opens it as the next Output run
    does before its stage (open_output, which evolves it by a new mapped column, and the files its snapshots
    reference for garbage collection): pyarrow is not imported, and the files are the table's."""
    flow = iceberg_flow(tmp_path)
    raw, _, output = _stores(flow)
    log = MemoryCommitLog()
    for first, run in ((0, "1"), (40, "2")):
        raw.write_bytes(f"{run}.json", raw_records(first, 40))
        _input(flow, log, f"in-{run}")
        _output(flow, log, f"out-{run}")
    table = table_of(flow)
    expected = sorted(referenced_files(table))
    assert len(expected) == 2 and len(table.snapshots()) == 2
    flow_file = tmp_path / "glueflow.yaml"
    document = yaml.safe_load(flow_file.read_text())
    mappings = document["flows"]["events"]["output_job"]["mappings"]
    mappings.append([mappings[0][2], mappings[0][3], "extra", mappings[0][3]])  # a new mapped column
    flow_file.write_text(yaml.safe_dump(document, sort_keys=False))
    child = textwrap.dedent(
        f"""
        import json, sys
        from glueflow_dagster.core.commits import CommittedParts
        from glueflow_dagster.core.config import load_config
        from glueflow_dagster.core.iceberg_commit import open_output
        from glueflow_dagster.core.storage import LocalStorage

        flow = load_config({str(flow_file)!r}).flows["events"]
        opened = open_output(flow, LocalStorage({str(output.root)!r}))
        keys = opened.guarded(CommittedParts(lambda run_id: None)).table
        columns = [f.name for f in opened.catalog.load_table(opened.target.identifier).schema().fields]
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "pyarrow")
        print(json.dumps({{"keys": sorted(keys), "columns": columns, "pyarrow": loaded[:5]}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["pyarrow"] == []
    base = Path(flow.output.uri).as_uri() + "/"
    assert seen["keys"] == [path.removeprefix(base) for path in expected]
    assert "extra" in seen["columns"]


def test_the_storage_io_reads_writes_and_refuses_paths_outside_the_warehouse(tmp_path: Path) -> None:
    warehouse = (tmp_path / "wh").as_uri()
    io = StorageFileIO({"warehouse": warehouse})
    out = io.new_output(f"{warehouse}/t/metadata/00000-x.metadata.json")
    with out.create() as stream:
        stream.write(b'{"a": 1}')
    assert (tmp_path / "wh" / "t" / "metadata" / "00000-x.metadata.json").read_bytes() == b'{"a": 1}'
    assert out.exists() and len(out) == 8
    with pytest.raises(FileExistsError):
        out.create(overwrite=False)
    with io.new_input(f"{warehouse}/t/metadata/00000-x.metadata.json").open() as stream:
        assert stream.read() == b'{"a": 1}'
    with pytest.raises(FileNotFoundError):
        io.new_input(f"{warehouse}/t/metadata/missing.json").open()
    assert not io.new_input(f"{warehouse}/t/metadata/missing.json").exists()
    with pytest.raises(ValueError, match="not under the table's warehouse"):
        io.new_input((tmp_path / "elsewhere.json").as_uri()).open()
    io.delete(f"{warehouse}/t/metadata/00000-x.metadata.json")
    assert not out.exists()

"""A failed query's late writers never reach the parts a rerun writes (stage.write.attempt_folder).

polars' streaming engine can open and write part files from its threads after ``collect_all`` raised for
a failed query; the stage then empties its parts folder and runs the query again under the same part
names. Seen on main as gzip parts that read back corrupt (``invalid stored block lengths``).
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest

from glueflow_dagster.core.stage.write import attempt_folder


def test_a_successful_query_moves_its_parts_and_folders_into_the_parts_folder(tmp_path: Path) -> None:
    out = tmp_path / "parts"
    out.mkdir()
    with attempt_folder(out) as folder:
        (folder / "part-00000.json").write_bytes(b"{}\n")
        (folder / "day=1").mkdir()
        (folder / "day=1" / "part-00001.json").write_bytes(b"{}\n")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "day=1",
        "day=1/part-00001.json",
        "part-00000.json",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts"]  # the query's folder is gone


def test_a_late_writer_of_a_failed_query_never_reaches_the_parts_folder(tmp_path: Path) -> None:
    out = tmp_path / "parts"
    out.mkdir()
    with pytest.raises(RuntimeError, match="bad record"), attempt_folder(out) as failed:
        (failed / "part-00000.json").write_bytes(b'{"a": 1}\n')
        raise RuntimeError("bad record")
    with pytest.raises(FileNotFoundError):  # polars' thread opening a part after collect_all raised
        (failed / "part-00001.json").write_bytes(b'{"late": 1}\n')
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts"]


@pytest.mark.parametrize("compression", ["uncompressed", "gzip"])
def test_polars_late_writers_stay_in_the_failed_querys_folder(tmp_path: Path, compression: str) -> None:
    """Real polars, the stage's own shape of query (a partitioned sink and a count collected together, the
    input with a record the schema refuses): no part file ever appears in the parts folder. Without the
    query's own folder, about one failed query in ten left a late part file there on this machine."""
    data = tmp_path / "b.json"
    data.write_bytes(b'{"a": 1}\n' * 3 + b"[1, 2]\n" + b'{"a": 2}\n')
    out = tmp_path / "parts"
    out.mkdir()
    for _ in range(100):
        scan = pl.scan_ndjson([str(data)], schema={"a": pl.Int64})
        with pytest.raises(pl.exceptions.ComputeError), attempt_folder(out) as folder:
            sink = scan.sink_ndjson(
                pl.PartitionBy(
                    str(folder),
                    file_path_provider=lambda args: f"part-{args.index_in_partition:05d}.json",
                    max_rows_per_file=100,
                    approximate_bytes_per_file=None,
                ),
                lazy=True,
                compression=compression,
            )
            pl.collect_all([sink, scan.select(pl.len())], engine="streaming")
        time.sleep(0.005)  # the late writers' window
        assert list(out.iterdir()) == []

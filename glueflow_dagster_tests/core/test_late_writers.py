"""A failed query's late writers never reach the parts a rerun writes (stage.write.attempt_folder).

polars' streaming engine can open and write part files from its threads after ``collect_all`` raised for
a failed query; the stage then empties its parts folder and runs the query again under the same part
names. Seen on main as gzip parts that read back corrupt (``invalid stored block lengths``). The late
writers themselves are shown by a loop of failing real-polars queries in the gzipflake report; it is not
a test here: polars' executor can hang on a failed ``collect_all`` ("joined on cancelled task").
"""

from __future__ import annotations

from pathlib import Path

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

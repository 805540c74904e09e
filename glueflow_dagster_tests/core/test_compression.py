"""ISA-L's part writer, directly: what polars' PartitionBy sink is handed for gzip levels 1-3."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from glueflow_dagster.core.compression import DEFAULT_GZIP_LEVEL, GZIP_LEVELS, IgzipParts, written_by_isal


def test_levels_one_to_three_are_isal_the_rest_zlib() -> None:
    assert [level for level in GZIP_LEVELS if written_by_isal(level)] == [1, 2, 3]
    assert written_by_isal(DEFAULT_GZIP_LEVEL) and not written_by_isal(None)
    with pytest.raises(ValueError, match="ISA-L writes gzip levels 1-3, got 6"):
        IgzipParts(Path("."), str, 6)


def test_a_polars_sink_writes_every_part_through_it_and_close_finishes_them(tmp_path: Path) -> None:
    frame = pl.DataFrame({"id": range(10_000), "name": [f"user-{i % 97}" for i in range(10_000)]})
    with IgzipParts(tmp_path, lambda index: f"part-{index:05d}.json.gz", 2) as parts:
        frame.lazy().sink_ndjson(pl.PartitionBy(str(tmp_path), file_path_provider=parts, max_rows_per_file=3000))
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [f"part-{index:05d}.json.gz" for index in range(4)]
    read = pl.concat([pl.read_ndjson(gzip.decompress((tmp_path / name).read_bytes())) for name in names])
    assert read.equals(frame)


def test_close_closes_every_part_even_when_one_fails(tmp_path: Path) -> None:
    parts = IgzipParts(tmp_path, lambda index: f"p{index}.gz", 1)
    first, second = parts(SimpleNamespace(index_in_partition=0)), parts(SimpleNamespace(index_in_partition=1))
    first.write(b'{"a": 1}\n')
    second.write(b'{"a": 2}\n')

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    second.stream.close = full_disk  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        parts.close()
    assert first.closed
    assert gzip.decompress((tmp_path / "p0.gz").read_bytes()) == b'{"a": 1}\n'
    parts.close()  # nothing left open: a second close is a no-op


def test_a_closed_provider_opens_no_part(tmp_path: Path) -> None:
    """polars may call a failed query's provider after collect_all raised; the stage has emptied the folder
    by then and reruns the query under the same part names: the late call must not open the part."""
    parts = IgzipParts(tmp_path, lambda index: f"part-{index:05d}.json.gz", 2)
    parts.close()
    with pytest.raises(ValueError, match=r"^part-00000.json.gz: the query's parts are closed"):
        parts(SimpleNamespace(index_in_partition=0))
    assert list(tmp_path.iterdir()) == []


def test_a_late_writer_of_a_failed_query_cannot_corrupt_the_rerun_part(tmp_path: Path) -> None:
    """The interleaving seen on S3 under load, forced: the failed query's provider is closed, the folder
    emptied, the rerun opens ``part-00000`` and polars' late thread asks the failed query's provider for
    the same part. Before the fix both wrote one file (two gzip streams at their own offsets: runs of
    zero bytes, ``invalid stored block lengths``)."""
    name = lambda index: f"part-{index:05d}.json.gz"  # noqa: E731
    failed = IgzipParts(tmp_path, name, 2)
    failed.close()  # the ExitStack of the failed query, before the stage empties the folder
    rerun = IgzipParts(tmp_path, name, 2)
    part = rerun(SimpleNamespace(index_in_partition=0))
    with pytest.raises(ValueError, match="closed"):
        late = failed(SimpleNamespace(index_in_partition=0))
        late.write(b'{"stale": 1}\n' * 5000)  # reached before the fix only
        late.close()
    records = b"".join(b'{"id": %d}\n' % i for i in range(5000))
    part.write(records)
    rerun.close()
    assert zlib.decompress((tmp_path / name(0)).read_bytes(), wbits=31) == records


def test_a_part_is_never_opened_twice(tmp_path: Path) -> None:
    (tmp_path / "p0.gz").write_bytes(b"another writer's part")
    with IgzipParts(tmp_path, lambda index: f"p{index}.gz", 1) as parts, pytest.raises(FileExistsError):
        parts(SimpleNamespace(index_in_partition=0))
    assert (tmp_path / "p0.gz").read_bytes() == b"another writer's part"


def test_a_write_after_close_is_refused(tmp_path: Path) -> None:
    parts = IgzipParts(tmp_path, lambda index: f"p{index}.gz", 1)
    part = parts(SimpleNamespace(index_in_partition=0))
    part.write(b'{"a": 1}\n')
    parts.close()
    with pytest.raises(ValueError):
        part.write(b'{"a": 2}\n')
    assert gzip.decompress((tmp_path / "p0.gz").read_bytes()) == b'{"a": 1}\n'

"""Job bookmarks: which objects a run reads, and the small state that remembers what was read.

Plain Python (no Dagster import). Selection is a pure function of (listing, state, option, policy);
committing is a separate step the caller takes only once the run has succeeded.

Options (Glue's ``--job-bookmark-option``)
------------------------------------------
* ``enable``: the run reads what no committed run has read; the caller commits on success.
* ``disable``: the run reads everything (Glue's default); the state never changes
  (``commit`` returns it unchanged).
* ``pause``: selects like ``enable`` (or, with :func:`select_range`, exactly the objects read between
  two committed runs: Glue's ``--job-bookmark-from/--job-bookmark-to``) and does not advance: the
  caller does not commit, and ``commit`` of a pause selection returns the state unchanged.

The state (:class:`Bookmark`): small, whatever the history
----------------------------------------------------------
* a high-water mark on the position ``(last_modified_ms, key)`` of everything committed;
* ``band``: the exact version ``key -> (last_modified_ms, etag)`` of committed objects inside the
  consistency band ``lm > watermark_ms - max_band_ms`` (Glue's maxBand, 15 minutes), at most
  ``max_band_files`` of them (the newest; Glue's maxFilesInBand). Exact, cheap, and the way a
  recent rewrite is recognised;
* ``retired``: a fixed-size :class:`Digest` (1032 cells: at most 26.8 KB packed, 35.8 KB as base64
  in the JSON) of every committed object version that is *not* in the band, however many there are;
* Glue's counters ``run_number`` and ``version`` (both +1 on every commit).

How each listed object is classified (:class:`ObjectState`)
-----------------------------------------------------------
* key in the band: ``ALREADY_READ`` if the version (lm, etag) is the band's, else ``MODIFIED``;
* position above the watermark: ``NEW`` (or ``MODIFIED`` when the digest shows that a committed
  version of the same key disappeared: a rewrite of an object read long ago);
* otherwise (at or below the watermark, not in the band) the object is checked against the digest:
  accounted for -> ``ALREADY_READ``; else ``MODIFIED`` (its key's old version disappeared), ``LATE``
  (``lm <= watermark_ms - max_band_ms``: a long multipart upload, a copy keeping its mtime) or
  ``NEW`` (a straggler inside the band, which Glue also picks up).

Late files with bounded state: the digest is an invertible Bloom lookup table
----------------------------------------------------------------------------
Glue assumes everything below the band was read and skips late objects silently. Keeping every
key would break the 64 KB budget, so ``retired`` is an *invertible Bloom lookup table* (IBLT):
each object version ``x`` has two stable 64-bit blake2b hashes, ``v = H(key, etag, lm)`` and
``k = H(key)``, and is added to 3 cells (one per third of the table, chosen by bits of ``v``);
a cell holds ``(count, xor of v, xor of k, xor of check(v))``. IBLTs are linear: at selection
the same table is built over the listed objects at or below the watermark (outside the band) and
subtracted from ``retired``. Objects in both cancel exactly; the difference is *peeled* (a cell
with count +-1 whose check matches holds exactly one object; remove it from its 3 cells and
repeat). Peeling yields, exactly and with no lookup at all, the listed objects no committed run
read (count -1: late or straggling) and the committed versions that are gone (count +1: deleted
or rewritten; their key hash ``k`` is how a rewrite of a retired object is counted ``MODIFIED``).
A table of m cells decodes up to about m / 1.3 differences (~790 for 1032 cells); differences
only accumulate between two commits, because **every commit re-baselines** ``retired`` to the
digest of the listed objects that were accounted for (``Selection.listing_digest``), so a deleted
object costs one decode, not a lookup on every later tick.

When the difference is too large to peel (e.g. thousands of objects deleted at once), the
candidates are the listed objects whose 3 cells all stay non-empty; ``known(candidates)`` (a
callback the shell provides, answering from the run history: the keys of the candidates whose
exact version, same key and etag, a committed run read or acknowledged) tells which were read.
**Without a callback, candidates are treated as not read, which may reprocess them** (never
skip them), and that run ignores the caps: reading every candidate is what lets its commit leave
an exact digest again (with caps, the same candidates would be re-read run after run). The shell
always passes a callback. In that overflow case a rewrite of a retired object may
be counted ``NEW`` rather than ``MODIFIED`` (and then processed even with ``on_modified=ignore``).
False "accounted" answers need a 64-bit hash collision. A state written before the digest existed
(no ``retired`` entry) is read as Glue reads it (everything below the band was read) until its
first commit from a selection, which re-baselines it into an exact digest.

Policies and caps (:class:`BookmarkPolicy`)
-------------------------------------------
* ``on_modified=reprocess`` reads every new version of a key once; ``ignore`` counts it as
  ``IGNORED`` and the commit *acknowledges* it (marks it read without reading it): the shell must
  record ``Selection.acknowledged`` with the run, as it records the manifest, for ``known``.
* ``on_late=process`` reads late objects; ``report`` counts them as ``IGNORED`` and never marks
  them read: they are reported by every run until processed (switch to ``process``) or removed.
* ``max_files_per_run`` / ``max_bytes_per_run`` (Glue's bounded execution): the run takes the
  oldest pending objects by (lm, key) until the next one does not fit (an object bigger than the
  byte cap is taken alone when it comes first, so nothing is ever stuck); that one and everything
  after it are ``DEFERRED``. The new watermark is the largest position committed, so it never
  passes a deferred object (ties on lm are split by key, and the key is part of the mark); a
  deferred object that already lies below the mark (a late one) is found again by the digest.

Nothing is skipped silently: every listed object gets exactly one :class:`ObjectState`, counted in
``Selection.states``; ``IGNORED`` and ``DEFERRED`` objects are listed in the selection (capped at
``REPORT_LIMIT`` for display).

For the caller (the Dagster shell)
----------------------------------
* Commit the :class:`Selection`, not only its manifest: that re-baselines the digest and marks
  acknowledged rewrites read. A run planned ahead (a frozen manifest) can carry it as
  ``Selection.to_dict()`` (the manifest plus the ~36 KB digest) and commit ``Selection.from_dict``.
  A bare manifest still commits correctly, but gone objects then stay in the digest and, past ~790
  of them, every tick needs ``known``.
* ``known`` answers from the runs the committed state descends from (after a rewind, not from the
  runs rewound away), counting their manifests and their ``acknowledged`` objects.
* To mark everything as read without running ("set to current"), select with no caps and
  ``on_late=process`` (reported late objects are otherwise left unread on purpose), then commit.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from hashlib import blake2b
from typing import Any

from glueflow_dagster.core.storage import ObjectInfo

__all__ = [
    "DEFAULT_MAX_BAND_FILES",
    "DEFAULT_MAX_BAND_MS",
    "DIGEST_CELLS",
    "OPTIONS",
    "REPORT_LIMIT",
    "Bookmark",
    "BookmarkError",
    "BookmarkPolicy",
    "Digest",
    "ObjectState",
    "Selection",
    "commit",
    "covers",
    "select_objects",
    "select_range",
]

DEFAULT_MAX_BAND_MS = 900_000  # Glue's default maxBand: 15 minutes
DEFAULT_MAX_BAND_FILES = 128  # like Glue's maxFilesInBand, but overflow goes to the digest, not deferred
DIGEST_CELLS = 1032  # 3 x 344 cells: decodes ~790 differences between two commits; 26.8 KB packed
REPORT_LIMIT = 1000  # objects listed per reported state in a Selection (counts are always complete)
OPTIONS = ("enable", "disable", "pause")
ON_MODIFIED = ("reprocess", "ignore")
ON_LATE = ("process", "report")

Known = Callable[[Sequence[ObjectInfo]], set[str]]

_MASK64 = (1 << 64) - 1
_CHECK_MUL = 0x9E3779B97F4A7C15  # odd 64-bit constant: check(v) is the top half of v * C mod 2**64
_CELL = struct.Struct("<HiQQI")  # index, count, xor v, xor k, xor check


class BookmarkError(ValueError):
    """A bookmark state, policy or option that cannot be read or used."""


def _pos(obj: ObjectInfo) -> tuple[int, str]:
    return (obj.last_modified_ms, obj.key)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------------
# Policy


@dataclass(frozen=True)
class BookmarkPolicy:
    """How a flow's bookmark treats the band, caps, rewritten and late objects."""

    max_band_ms: int = DEFAULT_MAX_BAND_MS
    max_files_per_run: int | None = None
    max_bytes_per_run: int | None = None  # a single object larger than the cap is still taken alone
    on_modified: str = "reprocess"  # reprocess | ignore
    on_late: str = "process"  # process | report
    max_band_files: int | None = DEFAULT_MAX_BAND_FILES  # None: every object of the band is kept exactly

    def __post_init__(self) -> None:
        if not _is_int(self.max_band_ms) or self.max_band_ms < 0:
            raise BookmarkError(f"max_band_ms must be an integer >= 0, got {self.max_band_ms!r}")
        for name in ("max_files_per_run", "max_bytes_per_run"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise BookmarkError(f"{name} must be an integer >= 1 or None, got {value!r}")
        if self.max_band_files is not None and (not _is_int(self.max_band_files) or self.max_band_files < 0):
            raise BookmarkError(f"max_band_files must be an integer >= 0 or None, got {self.max_band_files!r}")
        if self.on_modified not in ON_MODIFIED:
            raise BookmarkError(f"on_modified must be one of {', '.join(ON_MODIFIED)}, got {self.on_modified!r}")
        if self.on_late not in ON_LATE:
            raise BookmarkError(f"on_late must be one of {', '.join(ON_LATE)}, got {self.on_late!r}")


def _policy(policy: BookmarkPolicy | None, max_band_ms: int | None) -> BookmarkPolicy:
    result = policy if policy is not None else BookmarkPolicy()
    if max_band_ms is not None and max_band_ms != result.max_band_ms:
        result = replace(result, max_band_ms=max_band_ms)
    return result


# --------------------------------------------------------------------------------------------------
# The digest: an invertible Bloom lookup table over object versions


def _hashes(obj: ObjectInfo) -> tuple[int, int]:
    """(v, k): stable 64-bit hashes of the version (key, etag, lm) and of the key alone."""
    h = blake2b(obj.key.encode("utf-8", "surrogatepass"), digest_size=8)
    k = int.from_bytes(h.digest(), "little")
    h.update(f"\0{obj.etag}\0{obj.last_modified_ms}".encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little"), k


def _check(v: int) -> int:
    return ((v * _CHECK_MUL) & _MASK64) >> 32


class _Cells:
    """A mutable working copy of a digest."""

    __slots__ = ("n", "sub", "count", "vx", "kx", "cx")

    def __init__(self, n: int) -> None:
        self.n, self.sub = n, n // 3
        self.count = [0] * n
        self.vx = [0] * n
        self.kx = [0] * n
        self.cx = [0] * n

    @classmethod
    def of(cls, digest: Digest) -> _Cells:
        cells = cls(digest.cells)
        cells.count, cells.vx = list(digest.count), list(digest.vsum)
        cells.kx, cells.cx = list(digest.ksum), list(digest.csum)
        return cells

    def copy(self) -> _Cells:
        other = _Cells(self.n)
        other.count, other.vx, other.kx, other.cx = self.count[:], self.vx[:], self.kx[:], self.cx[:]
        return other

    def where(self, v: int) -> tuple[int, int, int]:
        sub = self.sub
        return v % sub, sub + (v >> 21) % sub, 2 * sub + (v >> 42) % sub

    def add(self, v: int, k: int, sign: int) -> None:
        c = _check(v)
        count, vx, kx, cx = self.count, self.vx, self.kx, self.cx
        for j in self.where(v):
            count[j] += sign
            vx[j] ^= v
            kx[j] ^= k
            cx[j] ^= c

    def subtract(self, other: _Cells) -> None:
        for j in range(self.n):
            self.count[j] -= other.count[j]
            self.vx[j] ^= other.vx[j]
            self.kx[j] ^= other.kx[j]
            self.cx[j] ^= other.cx[j]

    def nonzero(self) -> list[bool]:
        return [bool(c or v or k or x) for c, v, k, x in zip(self.count, self.vx, self.kx, self.cx, strict=True)]

    def is_zero(self) -> bool:
        return not (any(self.count) or any(self.vx) or any(self.kx) or any(self.cx))

    def _pure(self, j: int) -> bool:
        s = self.count[j]
        if s != 1 and s != -1:
            return False
        v = self.vx[j]
        return self.cx[j] == _check(v) and j in self.where(v)

    def peel(self) -> tuple[dict[int, int], dict[int, int], bool]:
        """Decode in place: (items with count -1, items with count +1, fully decoded), each v -> k."""
        minus: dict[int, int] = {}
        plus: dict[int, int] = {}
        stack = [j for j in range(self.n) if self._pure(j)]
        while stack:
            j = stack.pop()
            if not self._pure(j):
                continue
            s, v, k = self.count[j], self.vx[j], self.kx[j]
            if v in minus or v in plus:
                return minus, plus, False  # inconsistent: give up, the caller falls back
            (plus if s == 1 else minus)[v] = k
            self.add(v, k, -s)
            stack.extend(i for i in self.where(v) if self._pure(i))
        return minus, plus, self.is_zero()

    def freeze(self) -> Digest:
        return Digest(self.n, tuple(self.count), tuple(self.vx), tuple(self.kx), tuple(self.cx))


@dataclass(frozen=True)
class Digest:
    """Fixed-size digest (an IBLT) of a set of object versions; see the module docstring."""

    cells: int = DIGEST_CELLS
    count: tuple[int, ...] = ()
    vsum: tuple[int, ...] = ()
    ksum: tuple[int, ...] = ()
    csum: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not _is_int(self.cells) or self.cells < 3 or self.cells % 3 or self.cells > 0xFFFF:
            raise BookmarkError(f"digest cells must be a multiple of 3 in [3, 65535], got {self.cells!r}")
        if not self.count:
            zeros = (0,) * self.cells
            for name in ("count", "vsum", "ksum", "csum"):
                object.__setattr__(self, name, zeros)
        elif any(len(getattr(self, n)) != self.cells for n in ("count", "vsum", "ksum", "csum")):
            raise BookmarkError("digest arrays do not match its cell count")

    @classmethod
    def of(cls, objects: Iterable[ObjectInfo], cells: int = DIGEST_CELLS) -> Digest:
        work = _Cells(cells)
        for obj in objects:
            work.add(*_hashes(obj), 1)
        return work.freeze()

    @property
    def files(self) -> int:
        """How many object versions the digest holds."""
        return sum(self.count) // 3

    def to_text(self) -> str:
        """Base64 of the non-empty cells, packed."""
        rows = (
            _CELL.pack(j, c, v, k, x)
            for j, (c, v, k, x) in enumerate(zip(self.count, self.vsum, self.ksum, self.csum, strict=True))
            if c or v or k or x
        )
        return base64.b64encode(b"".join(rows)).decode("ascii")

    @classmethod
    def from_text(cls, cells: int, text: str) -> Digest:
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, AttributeError) as err:
            raise BookmarkError(f"bookmark digest is not valid base64: {err}") from err
        if len(raw) % _CELL.size:
            raise BookmarkError("bookmark digest is truncated")
        work = _Cells(cls(cells).cells)
        last = -1
        for j, c, v, k, x in _CELL.iter_unpack(raw):
            if j <= last or j >= cells:
                raise BookmarkError(f"bookmark digest has an invalid cell index {j}")
            last = j
            work.count[j], work.vx[j], work.kx[j], work.cx[j] = c, v, k, x
        return work.freeze()


# --------------------------------------------------------------------------------------------------
# The committed state


@dataclass(frozen=True)
class Bookmark:
    """What earlier successful runs read: a high-water mark, the band and the digest of the rest.

    ``retired`` is None only for a state written before the digest existed (read as Glue does).
    """

    watermark_ms: int | None = None
    watermark_key: str = ""
    band: dict[str, tuple[int, str]] = field(default_factory=dict)
    retired: Digest | None = field(default_factory=Digest)
    run_number: int = 0
    version: int = 0

    def covers(self, obj: ObjectInfo, policy: BookmarkPolicy | int | None = None) -> bool:
        """See :func:`covers`. ``policy`` may also be a band width in ms (older callers)."""
        if _is_int(policy):
            policy = BookmarkPolicy(max_band_ms=policy)  # type: ignore[arg-type]
        return covers(self, obj, policy)  # type: ignore[arg-type]

    @property
    def retired_files(self) -> int:
        return self.retired.files if self.retired is not None else 0

    def to_dict(self) -> dict[str, Any]:
        retired = None
        if self.retired is not None:
            retired = {
                "cells": self.retired.cells,
                "files": self.retired.files,
                "data": self.retired.to_text(),
            }
        return {
            "watermark_ms": self.watermark_ms,
            "watermark_key": self.watermark_key,
            "band": {key: [lm, etag] for key, (lm, etag) in sorted(self.band.items())},
            "retired": retired,
            "run_number": self.run_number,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Bookmark:
        if not data:
            return cls()
        try:
            return cls._from_dict(data)
        except BookmarkError:
            raise
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise BookmarkError(f"bookmark state is not valid: {err}") from err

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> Bookmark:
        if not isinstance(data, Mapping):
            raise BookmarkError(f"bookmark state must be an object, got {type(data).__name__}")
        watermark = data.get("watermark_ms")
        if watermark is not None and not _is_int(watermark):
            raise BookmarkError(f"watermark_ms must be an integer or null, got {watermark!r}")
        watermark_key = data.get("watermark_key", "")
        if not isinstance(watermark_key, str):
            raise BookmarkError("watermark_key must be a string")
        band: dict[str, tuple[int, str]] = {}
        raw_band = data.get("band", {})
        if not isinstance(raw_band, Mapping):
            raise BookmarkError("band must be an object of key -> [last_modified_ms, etag]")
        for key, value in raw_band.items():
            lm, etag = value
            if not (isinstance(key, str) and _is_int(lm) and isinstance(etag, str)):
                raise BookmarkError(f"band entry {key!r} must be [last_modified_ms, etag]")
            band[key] = (lm, etag)
        retired: Digest | None
        if "retired" not in data:
            retired = None if watermark is not None else Digest()  # a state from before the digest
        elif data["retired"] is None:
            retired = None
        else:
            raw = data["retired"]
            if not isinstance(raw, Mapping) or not _is_int(raw.get("cells")):
                raise BookmarkError("retired must be an object with cells and data")
            retired = Digest.from_text(raw["cells"], raw.get("data", ""))
            if "files" in raw and raw["files"] != retired.files:
                raise BookmarkError("bookmark digest does not match its file count (corrupt state)")
        counters = {name: data.get(name, 0) for name in ("run_number", "version")}
        for name, value in counters.items():
            if not _is_int(value) or value < 0:
                raise BookmarkError(f"{name} must be an integer >= 0, got {value!r}")
        if watermark is None and (band or (retired is not None and retired.files)):
            raise BookmarkError("a bookmark without a watermark cannot hold read objects")
        return cls(watermark, watermark_key, band, retired, counters["run_number"], counters["version"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Bookmark:
        try:
            return cls.from_dict(json.loads(text) if text else None)
        except json.JSONDecodeError as err:
            raise BookmarkError(f"bookmark state is not valid JSON: {err}") from err


def covers(bookmark: Bookmark, obj: ObjectInfo, policy: BookmarkPolicy | None = None) -> bool:
    """True when the state accounts for this exact object version, judged from the state alone.

    Exact for the band and above the watermark. Below it, a single object can only be tested against
    the digest's cells (an empty cell proves it was never committed; full cells prove nothing), so
    this answers True like Glue does; :func:`select_objects`, which sees the whole listing, is exact.
    """
    policy = policy if policy is not None else BookmarkPolicy()
    if bookmark.watermark_ms is None:
        return False
    held = bookmark.band.get(obj.key)
    if held is not None:
        return held == (obj.last_modified_ms, obj.etag)
    if _pos(obj) > (bookmark.watermark_ms, bookmark.watermark_key):
        return False
    if bookmark.retired is None:
        return obj.last_modified_ms <= bookmark.watermark_ms - policy.max_band_ms
    work = _Cells.of(bookmark.retired)
    v, _ = _hashes(obj)
    return all(work.count[j] or work.vx[j] for j in work.where(v))


# --------------------------------------------------------------------------------------------------
# Selection


class ObjectState(StrEnum):
    """What one run does with one listed object. Every listed object gets exactly one."""

    NEW = "new"  # read by this run: never read before
    MODIFIED = "modified"  # read by this run: a new version of a key that was read before
    LATE = "late"  # read by this run: last-modified <= watermark - band, never read
    ALREADY_READ = "already_read"  # a committed run read (or acknowledged) this exact version
    DEFERRED = "deferred"  # left for a later run by max_files_per_run / max_bytes_per_run
    IGNORED = "ignored"  # modified with on_modified=ignore, or late with on_late=report


_READ_STATES = (ObjectState.NEW, ObjectState.MODIFIED, ObjectState.LATE)


def _zero_counts() -> dict[ObjectState, int]:
    return dict.fromkeys(ObjectState, 0)


@dataclass(frozen=True)
class Selection:
    """The objects one run reads (its manifest) and the count of every other listed object's state.

    ``states`` partitions the listing (NEW/MODIFIED/LATE count objects in the manifest);
    ``found`` counts what each object *is* (new, modified, late, already read) whatever the run does
    with it, so ``new_files + modified_files + late_files + already_read_files == listed_files``.
    """

    manifest: tuple[ObjectInfo, ...]
    states: dict[ObjectState, int] = field(default_factory=_zero_counts)
    listed_files: int = 0
    already_read_files: int = 0
    found: dict[ObjectState, int] = field(default_factory=_zero_counts)
    late: tuple[ObjectInfo, ...] = ()  # late objects found (read, reported or deferred), capped
    deferred: tuple[ObjectInfo, ...] = ()  # capped at REPORT_LIMIT
    ignored: tuple[ObjectInfo, ...] = ()  # capped at REPORT_LIMIT
    acknowledged: tuple[ObjectInfo, ...] = ()  # ignored rewrites the commit marks read: complete
    deferred_bytes: int = 0
    option: str = "enable"
    policy: BookmarkPolicy = field(default_factory=BookmarkPolicy)
    base_version: int | None = None  # the state version it was selected from (commit checks it)
    listing_digest: Digest | None = None  # listed objects below the watermark that were accounted for
    digest_lookups: int = 0  # candidates passed to `known` (0 unless the digest difference overflowed)
    digest_guessed: bool = False  # overflow with no `known`: candidates taken as unread, caps lifted

    @property
    def manifest_bytes(self) -> int:
        return sum(obj.size for obj in self.manifest)

    @property
    def new_files(self) -> int:
        return self.found.get(ObjectState.NEW, 0)

    @property
    def modified_files(self) -> int:
        return self.found.get(ObjectState.MODIFIED, 0)

    @property
    def late_files(self) -> int:
        return self.found.get(ObjectState.LATE, 0)

    @property
    def skipped_files(self) -> int:
        return self.states.get(ObjectState.DEFERRED, 0) + self.states.get(ObjectState.IGNORED, 0)

    def counts(self) -> dict[str, int]:
        """Every count, named as run metadata."""
        return {
            "listed_files": self.listed_files,
            "new_files": self.new_files,
            "modified_files": self.modified_files,
            "late_files": self.late_files,
            "already_read_files": self.already_read_files,
            "skipped_files": self.skipped_files,
            "deferred_files": self.states.get(ObjectState.DEFERRED, 0),
            "ignored_files": self.states.get(ObjectState.IGNORED, 0),
            "deferred_bytes": self.deferred_bytes,
            "manifest_files": len(self.manifest),
            "manifest_bytes": self.manifest_bytes,
            "digest_lookups": self.digest_lookups,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of what :func:`commit` needs (and the counts), e.g. to freeze a planned run.

        The reported lists (late, deferred, ignored) are display-only and not included.
        """
        digest = self.listing_digest
        return {
            "option": self.option,
            "base_version": self.base_version,
            "manifest": [_row(obj) for obj in self.manifest],
            "acknowledged": [_row(obj) for obj in self.acknowledged],
            "listing_digest": None if digest is None else {"cells": digest.cells, "data": digest.to_text()},
            "policy": {
                name: getattr(self.policy, name)
                for name in (
                    "max_band_ms",
                    "max_files_per_run",
                    "max_bytes_per_run",
                    "on_modified",
                    "on_late",
                    "max_band_files",
                )
            },
            "states": {state.value: n for state, n in self.states.items()},
            "found": {state.value: n for state, n in self.found.items()},
            "listed_files": self.listed_files,
            "already_read_files": self.already_read_files,
            "deferred_bytes": self.deferred_bytes,
            "digest_lookups": self.digest_lookups,
            "digest_guessed": self.digest_guessed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selection:
        try:
            digest = data.get("listing_digest")
            return cls(
                manifest=tuple(_from_row(row) for row in data.get("manifest", ())),
                acknowledged=tuple(_from_row(row) for row in data.get("acknowledged", ())),
                listing_digest=None if digest is None else Digest.from_text(digest["cells"], digest["data"]),
                option=str(data.get("option", "enable")),
                base_version=data.get("base_version"),
                policy=BookmarkPolicy(**data.get("policy", {})),
                states={
                    **_zero_counts(),
                    **{ObjectState(k): int(n) for k, n in data.get("states", {}).items()},
                },
                found={
                    **_zero_counts(),
                    **{ObjectState(k): int(n) for k, n in data.get("found", {}).items()},
                },
                listed_files=int(data.get("listed_files", 0)),
                already_read_files=int(data.get("already_read_files", 0)),
                deferred_bytes=int(data.get("deferred_bytes", 0)),
                digest_lookups=int(data.get("digest_lookups", 0)),
                digest_guessed=bool(data.get("digest_guessed", False)),
            )
        except BookmarkError:
            raise
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise BookmarkError(f"selection is not valid: {err}") from err


def _row(obj: ObjectInfo) -> list[Any]:
    return [obj.key, obj.size, obj.last_modified_ms, obj.etag]


def _from_row(row: Sequence[Any]) -> ObjectInfo:
    key, size, lm, etag = row
    if not (isinstance(key, str) and _is_int(size) and _is_int(lm) and isinstance(etag, str)):
        raise BookmarkError(f"manifest row {row!r} must be [key, size, last_modified_ms, etag]")
    return ObjectInfo(key=key, size=size, last_modified_ms=lm, etag=etag)


@dataclass
class _Classified:
    objects: list[ObjectInfo]
    kinds: list[ObjectState]  # NEW, MODIFIED, LATE or ALREADY_READ, per listed object
    accounted: Digest  # digest of the listed objects below the watermark (not in the band) read before
    lookups: int = 0
    gone: dict[int, int] = field(default_factory=dict)  # committed versions no longer listed: v -> k
    guessed: bool = False  # overflow without `known`: candidates were taken as unread


def _classify(
    listing: Iterable[ObjectInfo], bookmark: Bookmark, policy: BookmarkPolicy, known: Known | None
) -> _Classified:
    """What each listed object is relative to the state (see the module docstring)."""
    objects = list(listing)
    new, modified, late, read = (
        ObjectState.NEW,
        ObjectState.MODIFIED,
        ObjectState.LATE,
        ObjectState.ALREADY_READ,
    )
    kinds = [new] * len(objects)
    retired = bookmark.retired
    n_cells = retired.cells if retired is not None else DIGEST_CELLS
    watermark = bookmark.watermark_ms
    if watermark is None:
        return _Classified(objects, kinds, Digest(n_cells))
    wkey = bookmark.watermark_key
    floor = watermark - policy.max_band_ms
    band = bookmark.band
    listed = _Cells(n_cells)
    count, vx, kx, cx, sub = listed.count, listed.vx, listed.kx, listed.cx, listed.sub
    dom_i: list[int] = []  # the digest's domain: at or below the watermark, key not in the band
    dom_v: list[int] = []
    dom_k: list[int] = []
    above: list[int] = []
    legacy = retired is None
    sub2, from_bytes = 2 * sub, int.from_bytes
    for i, obj in enumerate(objects):
        key, lm = obj.key, obj.last_modified_ms
        held = band.get(key)
        if held is not None:
            kinds[i] = read if held[0] == lm and held[1] == obj.etag else modified
            continue
        if lm > watermark or (lm == watermark and key > wkey):
            above.append(i)
            continue
        if legacy:
            if lm > floor:
                continue  # Glue's band: not held, so not read
            kinds[i] = read  # Glue's assumption below the band
        # Inlined _hashes() and _Cells.add(): this loop runs once per listed object on every tick.
        h = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8)
        k = from_bytes(h.digest(), "little")
        h.update(f"\0{obj.etag}\0{lm}".encode("utf-8", "surrogatepass"))
        v = from_bytes(h.digest(), "little")
        c = ((v * _CHECK_MUL) & _MASK64) >> 32
        j = v % sub
        count[j] += 1
        vx[j] ^= v
        kx[j] ^= k
        cx[j] ^= c
        j = sub + (v >> 21) % sub
        count[j] += 1
        vx[j] ^= v
        kx[j] ^= k
        cx[j] ^= c
        j = sub2 + (v >> 42) % sub
        count[j] += 1
        vx[j] ^= v
        kx[j] ^= k
        cx[j] ^= c
        dom_i.append(i)
        dom_v.append(v)
        dom_k.append(k)
    if legacy:
        return _Classified(objects, kinds, listed.freeze())

    residual = _Cells.of(retired)  # retired - listed: -1 = listed but never read, +1 = read but gone
    residual.subtract(listed)
    peeled = residual.copy()
    minus, plus, clean = peeled.peel()
    unread: set[int] = set()  # indexes into the domain
    lookups = 0
    guessed = False
    valid = True
    if minus:
        where = {v: d for d, v in enumerate(dom_v)}
        for v, k in minus.items():
            d = where.get(v)
            if d is None or dom_k[d] != k:
                valid = False
                break
            unread.add(d)
    if clean and valid:
        gone = plus
    else:
        if not valid:
            unread, peeled = set(), residual
        busy = peeled.nonzero()
        candidates = [
            d
            for d, v in enumerate(dom_v)
            if d not in unread and busy[v % sub] and busy[sub + (v >> 21) % sub] and busy[2 * sub + (v >> 42) % sub]
        ]
        lookups = len(candidates)
        if candidates and known is not None:
            seen = known([objects[dom_i[d]] for d in candidates])
            unread.update(d for d in candidates if objects[dom_i[d]].key not in seen)
        else:
            unread.update(candidates)
            guessed = bool(candidates)
        # residual + unread = the committed versions that are gone: decode their keys (rewrites).
        rest = residual.copy()
        for d in unread:
            rest.add(dom_v[d], dom_k[d], 1)
        gone = rest.peel()[1]
    gone_keys = set(gone.values())
    if unread:
        for d in unread:
            i = dom_i[d]
            if dom_k[d] in gone_keys:
                kinds[i] = modified
            elif objects[i].last_modified_ms <= floor:
                kinds[i] = late
            listed.add(dom_v[d], dom_k[d], -1)  # not accounted for: out of the re-baselined digest
    for d, i in enumerate(dom_i):
        if d not in unread:
            kinds[i] = read
    if gone_keys:
        for i in above:
            if _hashes(objects[i])[1] in gone_keys:
                kinds[i] = modified
    return _Classified(objects, kinds, listed.freeze(), lookups, gone, guessed)


def _found(kinds: Iterable[ObjectState]) -> dict[ObjectState, int]:
    return {**_zero_counts(), **Counter(kinds)}


def select_objects(
    listing: Iterable[ObjectInfo],
    bookmark: Bookmark,
    *,
    option: str,
    policy: BookmarkPolicy | None = None,
    max_band_ms: int | None = None,
    known: Known | None = None,
) -> Selection:
    """The manifest of a run (oldest first by (lm, key)) and the state of every listed object.

    ``known(candidates)`` returns the keys of the candidates whose exact version (key, etag) a
    committed run read or acknowledged; it is called only when the digest cannot decide (module
    docstring). ``disable`` returns everything, uncapped; ``pause`` selects like ``enable``.
    """
    if option not in OPTIONS:
        raise BookmarkError(f"bookmark option must be one of {', '.join(OPTIONS)}, got {option!r}")
    policy = _policy(policy, max_band_ms)
    if option == "disable":
        everything = sorted(listing, key=_pos)
        counts = _zero_counts()
        counts[ObjectState.NEW] = len(everything)
        return Selection(
            manifest=tuple(everything),
            states=counts,
            listed_files=len(everything),
            already_read_files=0,
            found=dict(counts),
            option=option,
            policy=policy,
        )
    result = _classify(listing, bookmark, policy, known)
    objects, kinds = result.objects, result.kinds
    states = _zero_counts()
    states[ObjectState.ALREADY_READ] = sum(1 for kind in kinds if kind is ObjectState.ALREADY_READ)
    pending = sorted(
        (i for i, kind in enumerate(kinds) if kind is not ObjectState.ALREADY_READ),
        key=lambda i: _pos(objects[i]),
    )
    manifest: list[ObjectInfo] = []
    acknowledged: list[ObjectInfo] = []
    late: list[ObjectInfo] = []
    deferred: list[ObjectInfo] = []
    ignored: list[ObjectInfo] = []
    waiting_rewrites: list[ObjectInfo] = []
    taken_bytes = deferred_bytes = 0
    files_cap, bytes_cap = policy.max_files_per_run, policy.max_bytes_per_run
    if result.guessed:  # read every candidate now, so the commit leaves an exact digest (no livelock)
        files_cap = bytes_cap = None
    cut = False
    for i in pending:
        obj, kind = objects[i], kinds[i]
        if kind is ObjectState.LATE:
            late.append(obj)
            if policy.on_late == "report":  # never marked read: reported by every run until processed
                states[ObjectState.IGNORED] += 1
                ignored.append(obj)
                continue
        if not cut and kind is ObjectState.MODIFIED and policy.on_modified == "ignore":
            states[ObjectState.IGNORED] += 1
            ignored.append(obj)
            acknowledged.append(obj)
            continue
        if not cut and (
            (files_cap is not None and len(manifest) >= files_cap)
            or (bytes_cap is not None and manifest and taken_bytes + obj.size > bytes_cap)
        ):
            cut = True  # everything after this object waits too, so the watermark never passes it
        if cut:
            states[ObjectState.DEFERRED] += 1
            deferred.append(obj)
            deferred_bytes += obj.size
            if kind is ObjectState.MODIFIED:
                waiting_rewrites.append(obj)
            continue
        manifest.append(obj)
        taken_bytes += obj.size
        states[kind] += 1
    listing_digest = result.accounted
    if result.gone and waiting_rewrites:
        # Keep the gone version of a deferred rewrite in the digest, so the next run still sees a rewrite.
        waiting = {_hashes(obj)[1] for obj in waiting_rewrites}
        work = _Cells.of(listing_digest)
        for v, k in result.gone.items():
            if k in waiting:
                work.add(v, k, 1)
        listing_digest = work.freeze()
    return Selection(
        manifest=tuple(manifest),
        states=states,
        listed_files=len(objects),
        already_read_files=states[ObjectState.ALREADY_READ],
        found=_found(kinds),
        late=tuple(late[:REPORT_LIMIT]),
        deferred=tuple(deferred[:REPORT_LIMIT]),
        ignored=tuple(ignored[:REPORT_LIMIT]),
        acknowledged=tuple(acknowledged),
        deferred_bytes=deferred_bytes,
        option=option,
        policy=policy,
        base_version=bookmark.version,
        listing_digest=listing_digest,
        digest_lookups=result.lookups,
        digest_guessed=result.guessed,
    )


def select_range(
    listing: Iterable[ObjectInfo],
    after_from: Bookmark,
    after_to: Bookmark,
    *,
    policy: BookmarkPolicy | None = None,
    known_from: Known | None = None,
    known_to: Known | None = None,
) -> Selection:
    """Pause with a range (Glue's ``--job-bookmark-from/--job-bookmark-to``): the listed objects the
    state after run `to` accounts for and the state after run `from` does not.

    Objects `from` covers are ALREADY_READ; objects `to` does not cover (later input) are IGNORED.
    No caps; the selection is never committed. ``known_from``/``known_to`` answer like ``known``, from
    the runs up to and including `from` / `to` (only needed if a digest difference overflows).
    """
    policy = policy if policy is not None else BookmarkPolicy()
    if after_to.run_number < after_from.run_number:
        raise BookmarkError(
            f"bookmark range is reversed: run number {after_from.run_number} (from) > {after_to.run_number} (to)"
        )
    objects = list(listing)
    to_kinds = _classify(objects, after_to, policy, known_to).kinds
    base = _classify(objects, after_from, policy, known_from)
    states = _zero_counts()
    manifest: list[ObjectInfo] = []
    ignored: list[ObjectInfo] = []
    for obj, kind, to_kind in zip(objects, base.kinds, to_kinds, strict=True):
        if kind is ObjectState.ALREADY_READ:
            states[kind] += 1
        elif to_kind is ObjectState.ALREADY_READ:
            manifest.append(obj)
            states[kind] += 1
        else:
            states[ObjectState.IGNORED] += 1
            ignored.append(obj)
    manifest.sort(key=_pos)
    return Selection(
        manifest=tuple(manifest),
        states=states,
        listed_files=len(objects),
        already_read_files=states[ObjectState.ALREADY_READ],
        found=_found(base.kinds),
        ignored=tuple(ignored[:REPORT_LIMIT]),
        option="pause",
        policy=policy,
        base_version=after_from.version,
        digest_lookups=base.lookups,
    )


# --------------------------------------------------------------------------------------------------
# Commit


def commit(
    bookmark: Bookmark,
    selection_or_manifest: Selection | Iterable[ObjectInfo],
    *,
    policy: BookmarkPolicy | None = None,
    max_band_ms: int | None = None,
) -> Bookmark:
    """The state after a SUCCESSFUL run that read the manifest (and acknowledged ignored rewrites).

    Given a :class:`Selection`, the digest is re-baselined to what the listing showed (deleted and
    rewritten objects leave it), and a selection planned from another state version raises
    BookmarkError (Glue's version mismatch); ``disable`` and ``pause`` selections return the state
    unchanged. Given a bare manifest, its objects are added and nothing is re-baselined. Objects
    leaving the band (older than watermark - max_band_ms, or beyond max_band_files) move into the
    digest. ``run_number`` and ``version`` both advance by one.
    """
    if isinstance(selection_or_manifest, Selection):
        selection = selection_or_manifest
        if selection.option != "enable":
            return bookmark
        if selection.base_version is not None and selection.base_version != bookmark.version:
            raise BookmarkError(
                "bookmark version mismatch: the selection was planned from version "
                f"{selection.base_version}, the state is at version {bookmark.version}"
            )
        items = selection.manifest + selection.acknowledged
        baseline = selection.listing_digest
        policy = _policy(policy if policy is not None else selection.policy, max_band_ms)
    else:
        items = tuple(selection_or_manifest)
        baseline = None
        policy = _policy(policy, max_band_ms)
    counters = {"run_number": bookmark.run_number + 1, "version": bookmark.version + 1}
    if not items and baseline is None:
        return replace(bookmark, **counters)
    mark = (bookmark.watermark_ms, bookmark.watermark_key) if bookmark.watermark_ms is not None else None
    for obj in items:
        if mark is None or _pos(obj) > mark:
            mark = _pos(obj)
    entries = dict(bookmark.band)
    for obj in items:
        entries[obj.key] = (obj.last_modified_ms, obj.etag)  # the newest committed version of the key
    band: dict[str, tuple[int, str]] = {}
    leaving: list[ObjectInfo] = []
    if mark is not None:
        floor = mark[0] - policy.max_band_ms
        recent = sorted(((lm, key) for key, (lm, _) in entries.items() if lm > floor), reverse=True)
        kept = {key for _, key in recent[: policy.max_band_files]} if policy.max_band_files is not None else None
        for key, (lm, etag) in entries.items():
            if lm > floor and (kept is None or key in kept):
                band[key] = (lm, etag)
            else:
                leaving.append(ObjectInfo(key=key, size=0, last_modified_ms=lm, etag=etag))
    retired = baseline if baseline is not None else bookmark.retired
    if retired is not None and leaving:
        work = _Cells.of(retired)
        for obj in leaving:
            work.add(*_hashes(obj), 1)
        retired = work.freeze()
    return Bookmark(
        watermark_ms=mark[0] if mark is not None else None,
        watermark_key=mark[1] if mark is not None else "",
        band=band,
        retired=retired,
        **counters,
    )


# --- the bookmark as the commit log records it ------------------------------------------------------
# Each committed state is the metadata of an event on `F/output` (Dagster's event log in the shell):
CTX_KEY = "bookmark_ctx"
ACTION_KEY = "bookmark_action"
STATE_KEY = "bookmark"
VERSION_KEY = "bookmark_version"
MANIFEST_KEY = "manifest"
MANIFEST_ID_KEY = "manifest_id"


@dataclass(frozen=True)
class CommittedBookmark:
    """The newest committed state of one flow and context, and the event that recorded it."""

    ctx: str
    bookmark: Bookmark
    storage_id: int | None = None
    run_id: str | None = None
    action: str | None = None

    @property
    def fresh(self) -> bool:
        """No state was ever committed for this context (a new or renamed `transformation_ctx`)."""
        return self.storage_id is None


def bookmark_metadata(ctx: str, action: str, bookmark: Bookmark) -> dict[str, Any]:
    return {
        CTX_KEY: ctx,
        ACTION_KEY: action,
        VERSION_KEY: bookmark.version,
        "bookmark_run_number": bookmark.run_number,
        STATE_KEY: json.loads(bookmark.to_json()),  # a dict: Dagster records it as JSON
    }

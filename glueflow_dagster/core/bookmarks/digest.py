"""The digest: the committed object versions outside the band, in a fixed size.

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
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b

from glueflow_dagster.core.bookmarks.policy import BookmarkError, is_int
from glueflow_dagster.core.storage import ObjectInfo

DIGEST_CELLS = 1032  # 3 x 344 cells: decodes ~790 differences between two commits; 26.8 KB packed

MASK64 = (1 << 64) - 1
CHECK_MUL = 0x9E3779B97F4A7C15  # odd 64-bit constant: check(v) is the top half of v * C mod 2**64
_CELL = struct.Struct("<HiQQI")  # index, count, xor v, xor k, xor check


# --------------------------------------------------------------------------------------------------
# The digest: an invertible Bloom lookup table over object versions


def version_hashes(obj: ObjectInfo) -> tuple[int, int]:
    """(v, k): stable 64-bit hashes of the version (key, etag, lm) and of the key alone."""
    h = blake2b(obj.key.encode("utf-8", "surrogatepass"), digest_size=8)
    k = int.from_bytes(h.digest(), "little")
    h.update(f"\0{obj.etag}\0{obj.last_modified_ms}".encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little"), k


def _check(v: int) -> int:
    return ((v * CHECK_MUL) & MASK64) >> 32


class Cells:
    """A mutable working copy of a digest."""

    __slots__ = ("n", "sub", "count", "vx", "kx", "cx")

    def __init__(self, n: int) -> None:
        self.n, self.sub = n, n // 3
        self.count = [0] * n
        self.vx = [0] * n
        self.kx = [0] * n
        self.cx = [0] * n

    @classmethod
    def of(cls, digest: Digest) -> Cells:
        cells = cls(digest.cells)
        cells.count, cells.vx = list(digest.count), list(digest.vsum)
        cells.kx, cells.cx = list(digest.ksum), list(digest.csum)
        return cells

    def copy(self) -> Cells:
        other = Cells(self.n)
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

    def subtract(self, other: Cells) -> None:
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
        if not is_int(self.cells) or self.cells < 3 or self.cells % 3 or self.cells > 0xFFFF:
            raise BookmarkError(f"digest cells must be a multiple of 3 in [3, 65535], got {self.cells!r}")
        if not self.count:
            zeros = (0,) * self.cells
            for name in ("count", "vsum", "ksum", "csum"):
                object.__setattr__(self, name, zeros)
        elif any(len(getattr(self, n)) != self.cells for n in ("count", "vsum", "ksum", "csum")):
            raise BookmarkError("digest arrays do not match its cell count")

    @classmethod
    def of(cls, objects: Iterable[ObjectInfo], cells: int = DIGEST_CELLS) -> Digest:
        work = Cells(cells)
        for obj in objects:
            work.add(*version_hashes(obj), 1)
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
        work = Cells(cls(cells).cells)
        last = -1
        for j, c, v, k, x in _CELL.iter_unpack(raw):
            if j <= last or j >= cells:
                raise BookmarkError(f"bookmark digest has an invalid cell index {j}")
            last = j
            work.count[j], work.vx[j], work.kx[j], work.cx[j] = c, v, k, x
        return work.freeze()

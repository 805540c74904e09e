"""Selecting a run's objects from a listing and the committed state.

How each listed object is classified (:class:`ObjectState`)
-----------------------------------------------------------
* key in the band: ``ALREADY_READ`` if the version (lm, etag) is the band's, else ``MODIFIED``;
* position above the watermark: ``NEW`` (or ``MODIFIED`` when the digest shows that a committed
  version of the same key disappeared: a rewrite of an object read long ago);
* otherwise (at or below the watermark, not in the band) the object is checked against the digest:
  accounted for -> ``ALREADY_READ``; else ``MODIFIED`` (its key's old version disappeared), ``LATE``
  (``lm <= watermark_ms - max_band_ms``: a long multipart upload, a copy keeping its mtime) or
  ``NEW`` (a straggler inside the band, which Glue also picks up).

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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import blake2b

from glueflow_dagster.core.bookmarks.digest import CHECK_MUL, DIGEST_CELLS, MASK64, Cells, Digest, version_hashes
from glueflow_dagster.core.bookmarks.policy import (
    OPTIONS,
    REPORT_LIMIT,
    BookmarkError,
    BookmarkPolicy,
    Known,
    position,
    resolve_policy,
)
from glueflow_dagster.core.bookmarks.selection import ObjectState, Selection, zero_counts
from glueflow_dagster.core.bookmarks.state import Bookmark
from glueflow_dagster.core.storage import ObjectInfo


@dataclass
class _Classified:
    objects: list[ObjectInfo]
    kinds: list[ObjectState]  # NEW, MODIFIED, LATE or ALREADY_READ, per listed object
    accounted: Digest  # digest of the listed objects below the watermark (not in the band) read before
    lookups: int = 0
    gone: dict[int, int] = field(default_factory=dict)  # committed versions no longer listed: v -> k
    guessed: bool = False  # overflow without `known`: candidates were taken as unread


@dataclass
class _Domain:
    """The listed objects the digest speaks for: at or below the watermark, key not in the band."""

    listed: Cells  # their digest
    index: list[int]  # each one's index in the listing
    v: list[int]  # each one's version hash
    k: list[int]  # each one's key hash
    above: list[int]  # indexes of the listed objects above the watermark


def _classify(
    listing: Iterable[ObjectInfo], bookmark: Bookmark, policy: BookmarkPolicy, known: Known | None
) -> _Classified:
    """What each listed object is relative to the state (see the module docstring)."""
    objects = list(listing)
    kinds = [ObjectState.NEW] * len(objects)
    retired = bookmark.retired
    n_cells = retired.cells if retired is not None else DIGEST_CELLS
    if bookmark.watermark_ms is None:
        return _Classified(objects, kinds, Digest(n_cells))
    floor = bookmark.watermark_ms - policy.max_band_ms
    domain = _domain(objects, kinds, bookmark, bookmark.watermark_ms, floor, n_cells)
    if retired is None:  # a state from before the digest: read as Glue reads it
        return _Classified(objects, kinds, domain.listed.freeze())

    residual = Cells.of(retired)  # retired - listed: -1 = listed but never read, +1 = read but gone
    residual.subtract(domain.listed)
    unread, gone, lookups, guessed = _unread(residual, domain, objects, known)
    gone_keys = set(gone.values())
    if unread:
        for d in unread:
            i = domain.index[d]
            if domain.k[d] in gone_keys:
                kinds[i] = ObjectState.MODIFIED
            elif objects[i].last_modified_ms <= floor:
                kinds[i] = ObjectState.LATE
            domain.listed.add(domain.v[d], domain.k[d], -1)  # not accounted for: out of the re-baselined digest
    for d, i in enumerate(domain.index):
        if d not in unread:
            kinds[i] = ObjectState.ALREADY_READ
    if gone_keys:
        for i in domain.above:
            if version_hashes(objects[i])[1] in gone_keys:
                kinds[i] = ObjectState.MODIFIED
    return _Classified(objects, kinds, domain.listed.freeze(), lookups, gone, guessed)


def _domain(
    objects: list[ObjectInfo],
    kinds: list[ObjectState],
    bookmark: Bookmark,
    watermark: int,
    floor: int,
    n_cells: int,
) -> _Domain:
    """Sort the listing against the band and the watermark, and build the digest of the digest's domain.

    Sets ``kinds`` of the objects the band decides (and, for a state from before the digest, of those
    Glue assumes read below the band).
    """
    modified, read = ObjectState.MODIFIED, ObjectState.ALREADY_READ
    wkey = bookmark.watermark_key
    band = bookmark.band
    listed = Cells(n_cells)
    count, vx, kx, cx, sub = listed.count, listed.vx, listed.kx, listed.cx, listed.sub
    dom_i: list[int] = []  # the digest's domain: at or below the watermark, key not in the band
    dom_v: list[int] = []
    dom_k: list[int] = []
    above: list[int] = []
    legacy = bookmark.retired is None
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
        # Inlined version_hashes() and Cells.add(): this loop runs once per listed object on every tick.
        h = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8)
        k = from_bytes(h.digest(), "little")
        h.update(f"\0{obj.etag}\0{lm}".encode("utf-8", "surrogatepass"))
        v = from_bytes(h.digest(), "little")
        c = ((v * CHECK_MUL) & MASK64) >> 32
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
    return _Domain(listed, dom_i, dom_v, dom_k, above)


def _unread(
    residual: Cells, domain: _Domain, objects: list[ObjectInfo], known: Known | None
) -> tuple[set[int], dict[int, int], int, bool]:
    """Decode ``residual`` (retired - listed): (the domain's unread objects, the committed versions gone
    as v -> k, the candidates passed to ``known``, whether candidates were guessed unread).

    Peeling decides alone when the difference is small enough; otherwise the candidates (objects whose
    3 cells all stay non-empty) are asked of ``known`` (see :mod:`~glueflow_dagster.core.bookmarks.digest`).
    """
    dom_v, dom_k, sub = domain.v, domain.k, residual.sub
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
        return unread, plus, lookups, guessed
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
        seen = known([objects[domain.index[d]] for d in candidates])
        unread.update(d for d in candidates if objects[domain.index[d]].key not in seen)
    else:
        unread.update(candidates)
        guessed = bool(candidates)
    # residual + unread = the committed versions that are gone: decode their keys (rewrites).
    rest = residual.copy()
    for d in unread:
        rest.add(dom_v[d], dom_k[d], 1)
    return unread, rest.peel()[1], lookups, guessed


def _found(kinds: Iterable[ObjectState]) -> dict[ObjectState, int]:
    return {**zero_counts(), **Counter(kinds)}


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
    committed run read or acknowledged; it is called only when the digest cannot decide (see
    :mod:`~glueflow_dagster.core.bookmarks.digest`). ``disable`` returns everything, uncapped; ``pause``
    selects like ``enable``.
    """
    if option not in OPTIONS:
        raise BookmarkError(f"bookmark option must be one of {', '.join(OPTIONS)}, got {option!r}")
    policy = resolve_policy(policy, max_band_ms)
    if option == "disable":
        return _select_everything(listing, option, policy)
    result = _classify(listing, bookmark, policy, known)
    objects, kinds = result.objects, result.kinds
    pending = sorted(
        (i for i, kind in enumerate(kinds) if kind is not ObjectState.ALREADY_READ),
        key=lambda i: position(objects[i]),
    )
    # Read every candidate now when they were guessed, so the commit leaves an exact digest (no livelock).
    taken = _take(objects, kinds, pending, policy, capped=not result.guessed)
    taken.states[ObjectState.ALREADY_READ] = sum(1 for kind in kinds if kind is ObjectState.ALREADY_READ)
    listing_digest = result.accounted
    if result.gone and taken.waiting_rewrites:
        # Keep the gone version of a deferred rewrite in the digest, so the next run still sees a rewrite.
        waiting = {version_hashes(obj)[1] for obj in taken.waiting_rewrites}
        work = Cells.of(listing_digest)
        for v, k in result.gone.items():
            if k in waiting:
                work.add(v, k, 1)
        listing_digest = work.freeze()
    return Selection(
        manifest=tuple(taken.manifest),
        states=taken.states,
        listed_files=len(objects),
        already_read_files=taken.states[ObjectState.ALREADY_READ],
        found=_found(kinds),
        late=tuple(taken.late[:REPORT_LIMIT]),
        deferred=tuple(taken.deferred[:REPORT_LIMIT]),
        ignored=tuple(taken.ignored[:REPORT_LIMIT]),
        acknowledged=tuple(taken.acknowledged),
        deferred_bytes=taken.deferred_bytes,
        option=option,
        policy=policy,
        base_version=bookmark.version,
        listing_digest=listing_digest,
        digest_lookups=result.lookups,
        digest_guessed=result.guessed,
    )


def _select_everything(listing: Iterable[ObjectInfo], option: str, policy: BookmarkPolicy) -> Selection:
    """``disable``: every listed object, oldest first, uncapped; nothing counts as read before."""
    everything = sorted(listing, key=position)
    counts = zero_counts()
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


@dataclass
class _Taken:
    """What a run does with its pending objects (those not already read), in (lm, key) order."""

    states: dict[ObjectState, int] = field(default_factory=zero_counts)
    manifest: list[ObjectInfo] = field(default_factory=list)
    acknowledged: list[ObjectInfo] = field(default_factory=list)
    late: list[ObjectInfo] = field(default_factory=list)
    deferred: list[ObjectInfo] = field(default_factory=list)
    ignored: list[ObjectInfo] = field(default_factory=list)
    waiting_rewrites: list[ObjectInfo] = field(default_factory=list)  # deferred MODIFIED objects
    deferred_bytes: int = 0


def _take(
    objects: list[ObjectInfo], kinds: list[ObjectState], pending: list[int], policy: BookmarkPolicy, *, capped: bool
) -> _Taken:
    """Apply the policy and the caps to the pending objects (see the module docstring)."""
    taken = _Taken()
    states = taken.states
    taken_bytes = 0
    files_cap, bytes_cap = (policy.max_files_per_run, policy.max_bytes_per_run) if capped else (None, None)
    cut = False
    for i in pending:
        obj, kind = objects[i], kinds[i]
        if kind is ObjectState.LATE:
            taken.late.append(obj)
            if policy.on_late == "report":  # never marked read: reported by every run until processed
                states[ObjectState.IGNORED] += 1
                taken.ignored.append(obj)
                continue
        if not cut and kind is ObjectState.MODIFIED and policy.on_modified == "ignore":
            states[ObjectState.IGNORED] += 1
            taken.ignored.append(obj)
            taken.acknowledged.append(obj)
            continue
        if not cut and (
            (files_cap is not None and len(taken.manifest) >= files_cap)
            or (bytes_cap is not None and taken.manifest and taken_bytes + obj.size > bytes_cap)
        ):
            cut = True  # everything after this object waits too, so the watermark never passes it
        if cut:
            states[ObjectState.DEFERRED] += 1
            taken.deferred.append(obj)
            taken.deferred_bytes += obj.size
            if kind is ObjectState.MODIFIED:
                taken.waiting_rewrites.append(obj)
            continue
        taken.manifest.append(obj)
        taken_bytes += obj.size
        states[kind] += 1
    return taken


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
    states = zero_counts()
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
    manifest.sort(key=position)
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

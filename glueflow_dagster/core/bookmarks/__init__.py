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

Where the rest is told: the state (a watermark, the band, the digest of the rest, Glue's counters) in
:mod:`~glueflow_dagster.core.bookmarks.state`; how each listed object is classified, and the policies
and caps, in :mod:`~glueflow_dagster.core.bookmarks.select`; the digest (an invertible Bloom lookup
table) and what happens when it cannot decide, in :mod:`~glueflow_dagster.core.bookmarks.digest`.

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

The package, by concept: ``policy`` (options, policy, errors), ``digest``, ``state`` (the Bookmark and
its commit), ``selection`` (what one run reads), ``select`` (making a selection) and ``metadata`` (the
keys the commit log records). Every public name is importable from here.
"""

from glueflow_dagster.core.bookmarks.digest import DIGEST_CELLS, Digest
from glueflow_dagster.core.bookmarks.metadata import (
    ACTION_KEY,
    CTX_KEY,
    MANIFEST_ID_KEY,
    MANIFEST_KEY,
    STATE_KEY,
    VERSION_KEY,
    CommittedBookmark,
    bookmark_metadata,
)
from glueflow_dagster.core.bookmarks.policy import (
    DEFAULT_MAX_BAND_FILES,
    DEFAULT_MAX_BAND_MS,
    ON_LATE,
    ON_MODIFIED,
    OPTIONS,
    REPORT_LIMIT,
    BookmarkError,
    BookmarkPolicy,
    Known,
)
from glueflow_dagster.core.bookmarks.select import select_objects, select_range
from glueflow_dagster.core.bookmarks.selection import ObjectState, Selection
from glueflow_dagster.core.bookmarks.state import Bookmark, commit, covers

__all__ = [
    "ACTION_KEY",
    "CTX_KEY",
    "DEFAULT_MAX_BAND_FILES",
    "DEFAULT_MAX_BAND_MS",
    "DIGEST_CELLS",
    "MANIFEST_ID_KEY",
    "MANIFEST_KEY",
    "ON_LATE",
    "ON_MODIFIED",
    "OPTIONS",
    "REPORT_LIMIT",
    "STATE_KEY",
    "VERSION_KEY",
    "Bookmark",
    "BookmarkError",
    "BookmarkPolicy",
    "CommittedBookmark",
    "Digest",
    "Known",
    "ObjectState",
    "Selection",
    "bookmark_metadata",
    "commit",
    "covers",
    "select_objects",
    "select_range",
]

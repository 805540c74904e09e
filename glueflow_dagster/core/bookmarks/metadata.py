"""The bookmark as the commit log records it: each committed state is the metadata of an event on `F/output`
(Dagster's event log, in the shell)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from glueflow_dagster.core.bookmarks.state import Bookmark

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

"""The keys of a storage listing, the way the storage tests compare listings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def keys_of(infos: Iterable[Any]) -> list[str]:
    """The ``key`` of every object (``ObjectInfo``, pending upload, ...) in ``infos``, in their order."""
    return [info.key for info in infos]

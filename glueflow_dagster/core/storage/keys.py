"""Keys and exclusion globs, the same on every backend.

Keys are always relative to the location root, ``'/'``-separated, and are refused when they could escape
the root (absolute, ``..``, backslashes, empty segments) so the same key behaves the same on both backends.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from glueflow_dagster.core.storage.errors import SHOWN_CHARS, StorageError, shorten
from glueflow_dagster.core.storage.objects import TMP_PREFIX

# --------------------------------------------------------------------------------------------------
# Globs


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate a Glue exclusion glob into a regex matched against a whole key.

    ``*``/``?``/``[...]`` never cross a ``/``; ``**`` does. ``**/`` also matches *zero* folders (so
    ``**/_SUCCESS`` excludes a top-level ``_SUCCESS`` too, which is what people writing it mean).
    """
    out: list[str] = []
    in_group = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] in "!^"
            if negate:
                j += 1
            start = j
            if j < n and pattern[j] == "]":  # a leading ']' is a literal member
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                raise ValueError(f"invalid glob {pattern!r}: unclosed '['")
            members = "".join(ch if ch == "-" else re.escape(ch) for ch in pattern[start:j])
            # A class never matches '/', just like '*' and '?'.
            out.append(f"[^/{members}]" if negate else f"(?!/)[{members}]")
            i = j
        elif c == "{":
            if in_group:
                raise ValueError(f"invalid glob {pattern!r}: nested '{{' is not supported")
            in_group = True
            out.append("(?:")
        elif c == "}" and in_group:
            in_group = False
            out.append(")")
        elif c == "," and in_group:
            out.append("|")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    if in_group:
        raise ValueError(f"invalid glob {pattern!r}: unclosed '{{'")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as err:  # e.g. a reversed range "[z-a]"
        raise ValueError(f"invalid glob {pattern!r}: {err}") from err


def glob_match(pattern: str, key: str) -> bool:
    """True when the Glue exclusion glob ``pattern`` matches the whole ``key``.

    ``*`` matches within one path level, ``**`` across levels (``**.tmp`` matches ``c.tmp`` and
    ``a/b/c.tmp``), ``?`` one character other than ``/``, ``[...]``/``[!...]`` a character class,
    ``{a,b}`` alternatives (not nested), ``\\`` escapes. Raises ``ValueError`` for a malformed pattern.
    """
    return compile_glob(pattern).fullmatch(key) is not None


def compile_exclusions(exclusions: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    # A bare string would silently be iterated character by character: refuse it loudly.
    if isinstance(exclusions, str):
        raise TypeError("exclusions must be a sequence of glob patterns, not a single string")
    return tuple(compile_glob(p) for p in exclusions)


def excluded(key: str, matchers: tuple[re.Pattern[str], ...]) -> bool:
    return any(m.fullmatch(key) is not None for m in matchers)


# --------------------------------------------------------------------------------------------------
# Keys


_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f]")  # one regex search: keys are checked by the 100,000


def check_key(key: str, where: str, *, prefix: bool = False) -> str:
    """Validate an object key (or, with ``prefix=True``, a folder prefix) and return it normalised.

    Prefixes may be empty and may end with '/', which is dropped. Anything that could resolve outside
    the root, or that two backends would read differently, is refused rather than normalised.
    """
    if not isinstance(key, str):
        raise StorageError(f"{key!r}: key must be a string (storage {where})", uri=where)
    if prefix and key.endswith("/"):
        stripped = key.rstrip("/")
        if not stripped:
            raise StorageError(f"{key}: key escapes the storage root (absolute path; storage {where})", uri=where)
        key = stripped
    if not key:
        if prefix:
            return ""
        raise StorageError(f"'': empty key (storage {where})", uri=where)

    # One line (repr of unprintable keys) and bounded: a key refused here may be anything a caller passed.
    shown = shorten(key if key.isprintable() else repr(key), 2 * SHOWN_CHARS)

    def refuse(cause: str, detail: str) -> StorageError:
        return StorageError(f"{shown}: {cause} ({detail}; storage {where})", uri=where)

    if key.startswith("/"):
        raise refuse("key escapes the storage root", "absolute path")
    if "\\" in key:
        raise refuse("key escapes the storage root", "backslash not allowed in keys")
    if _CONTROL_CHARS.search(key):
        # NUL breaks file names; newlines would break one-line messages and line-based manifests.
        raise refuse("invalid key", "control characters not allowed in keys")
    segments = key.split("/")
    if ".." in segments:
        raise refuse("key escapes the storage root", "'..' segment")
    if "" in segments:
        raise refuse("invalid key", "empty path segment: '//' or trailing '/'")
    if "." in segments:
        raise refuse("invalid key", "'.' segment")
    if any(s.startswith(TMP_PREFIX) for s in segments):
        raise refuse("invalid key", f"names starting with {TMP_PREFIX!r} are reserved for in-progress writes")
    return key


def is_marker(key: str) -> bool:
    """S3 'folder/' marker keys (and anything ending in '/', which no file can mirror)."""
    return key.endswith("/")

"""Error messages of the storage (and of the configuration, which shows values the same way).

Every message is one line, bounded, and never shows a credential: URL userinfo is redacted wherever the
message was built, and values are cut to :data:`SHOWN_CHARS`.
"""

from __future__ import annotations

import reprlib

#: Characters of a quoted value kept in an error message (then "...").
SHOWN_CHARS = 40
_USERINFO_STOPS = frozenset("/?#@'\"")


def redact(text: str) -> str:
    """``text`` with every URL userinfo replaced by ``***``: ``s3://key:secret@b`` -> ``s3://***@b``,
    ``http://key@host`` -> ``http://***@host``, and any ``user:password@`` even without a scheme, so an
    endpoint URL or a URI with credentials never reaches a message or a log.

    A scan back from each ``@`` (not a regex: linear on any input, however long).
    """
    if "@" not in text:
        return text
    out: list[str] = []
    done = 0  # text[:done] is in out already
    at = text.find("@")
    while at >= 0:
        start = at
        while start > done and text[start - 1] not in _USERINFO_STOPS and not text[start - 1].isspace():
            start -= 1
        userinfo = text[start:at]
        if userinfo and (":" in userinfo or text.endswith("://", 0, start)):
            out += (text[done:start], "***")
            done = at
        at = text.find("@", at + 1)
    out.append(text[done:])
    return "".join(out)


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """At most ``limit`` characters of ``text`` plus ``...`` (a message never embeds an unbounded value)."""
    return text if len(text) <= limit else text[:limit] + "..."


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value for an error message: redacted, ``repr``'d (so it stays on one line), cut to ``limit``.

    Containers go through a bounded ``reprlib`` first: a huge value (a YAML alias bomb expands to a
    billion elements) costs a few hundred characters to show, not its size.
    """
    if isinstance(value, str):
        text = redact(value)
        return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
    return shorten(redact(_BOUNDED_REPR.repr(value)), limit)


_BOUNDED_REPR = reprlib.Repr()
_BOUNDED_REPR.maxlevel = 3
_BOUNDED_REPR.maxstring = _BOUNDED_REPR.maxother = 2 * SHOWN_CHARS
_BOUNDED_REPR.maxlist = _BOUNDED_REPR.maxtuple = _BOUNDED_REPR.maxdict = _BOUNDED_REPR.maxset = 4


class StorageError(RuntimeError):
    """A storage operation failed; the message is one line: ``"<uri or key>: <cause>"``.

    URL credentials are redacted here, whatever built the message.
    """

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(redact(message))
        self.uri = redact(uri) if uri is not None else None

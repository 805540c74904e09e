"""Flow-ratio arithmetic from the Glue monitoring guide: bytes read downstream / bytes written upstream.

About 1 is healthy; above 1 means reprocessing or backlog; below 1 means the downstream job fell behind.
"""

from __future__ import annotations


def flow_ratio(bytes_read: int, bytes_written: int) -> float | None:
    """The guide's ratio; None when upstream wrote nothing but downstream read something (undefined)."""
    if bytes_written == 0:
        # Nothing written and nothing read is a balanced flow; reading with nothing written has no ratio.
        return 1.0 if bytes_read == 0 else None
    return bytes_read / bytes_written

"""Flow-ratio arithmetic from the Glue monitoring guide: bytes read downstream / bytes written upstream.

About 1 is healthy; above 1 means reprocessing or backlog; below 1 means the downstream job fell behind.
"""

from __future__ import annotations

# How an undefined ratio is shown, in every table, the chart and the runs' metadata notes.
NOT_APPLICABLE = "n/a"


def flow_ratio(bytes_read: int, bytes_written: int) -> float | None:
    """The guide's ratio; None (shown as n/a) when either side is zero.

    A window where nothing was written, or nothing was read, has nothing to compare: 0/0 is not a balanced
    flow (1.00) and W/0 is not "fell behind by everything" when no Output run started in the window yet
    (0.00); both read as figures that were measured, so the ratio is undefined instead.
    """
    if bytes_written == 0 or bytes_read == 0:
        return None
    return bytes_read / bytes_written

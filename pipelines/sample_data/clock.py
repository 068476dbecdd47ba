"""Fast ISO-8601 timestamp formatting (times are integer milliseconds since the epoch, UTC).

Valid forms only, all with an explicit offset::

    UTC           2026-10-03T09:30:00Z
    UTC_MS        2026-10-03T09:30:00.123Z
    LOCAL         2026-10-03T10:30:00+01:00
    LOCAL_MS      2026-10-03T10:30:00.123+01:00
"""

from __future__ import annotations

import datetime as dt

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

UTC, UTC_MS, LOCAL, LOCAL_MS = 0, 1, 2, 3

_EPOCH = dt.date(1970, 1, 1)
_DATES: dict[int, str] = {}
_HMS: list[str] = []
_OFFSETS: dict[int, str] = {}
_MILLIS = [f".{ms:03d}" for ms in range(1000)]


def _hms() -> list[str]:
    if not _HMS:
        _HMS.extend([f"T{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)])
    return _HMS


def offset_text(minutes: int) -> str:
    text = _OFFSETS.get(minutes)
    if text is None:
        sign = "+" if minutes >= 0 else "-"
        text = _OFFSETS[minutes] = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return text


def date_text(day: int) -> str:
    text = _DATES.get(day)
    if text is None:
        text = _DATES[day] = (_EPOCH + dt.timedelta(days=day)).isoformat()
    return text


def epoch_ms(date: dt.date) -> int:
    return (date - _EPOCH).days * DAY_MS


def iso(t: int, offset_min: int, style: int) -> str:
    """Format ``t`` (ms, UTC) in one of the styles above; local styles use ``offset_min``."""
    hms = _HMS or _hms()
    if style & 2:
        t += offset_min * MINUTE_MS
        suffix = _OFFSETS.get(offset_min) or offset_text(offset_min)
    else:
        suffix = "Z"
    day = t // DAY_MS
    rem = t - day * DAY_MS
    date = _DATES.get(day) or date_text(day)
    if style & 1:
        sec = rem // 1000
        return date + hms[sec] + _MILLIS[rem - sec * 1000] + suffix
    return date + hms[rem // 1000] + suffix


def naive(t: int, offset_min: int) -> str:
    """Local wall-clock time without an offset (invalid on purpose)."""
    t += offset_min * MINUTE_MS
    day, rem = divmod(t, DAY_MS)
    return f"{date_text(day)}{_hms()[rem // 1000]}"

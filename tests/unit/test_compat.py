"""The one module that touches Faust's and aiokafka's private internals refuses other versions,
and no other module touches them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.views import compat

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_versions_are_the_supported_ones() -> None:
    compat.check_versions()  # pyproject pins exactly these


def test_another_version_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(compat.SUPPORTED, "aiokafka", "0.0.1")
    with pytest.raises(compat.UnsupportedVersion, match=r"aiokafka.*app/views/compat.py"):
        compat.check_versions()


def test_no_other_module_uses_their_private_names() -> None:
    private = re.compile(
        r"\b(_current_event|_client\.|_coordinator\.|_ensure_consumer|_acked|_gap\b"
        r"|_committed_offset|_new_offset)"
    )
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("app", "agents", "tables")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "compat.py" and private.search(path.read_text())
    ]
    assert offenders == []

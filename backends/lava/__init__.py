"""Lava backend: the converted IR as a Lava process graph (CPU simulation of Loihi 2).

Everything that imports lava lives in this package. `lava_available()` and `require_lava()`
let the rest of snnc work (and say what to install) when lava-nc is missing.
"""

from __future__ import annotations

import importlib.util

from snnc.compiler.errors import UsageError

INSTALL_HINT = ("install it into the same environment with\n"
                "  pip install --no-deps --ignore-requires-python lava-nc==0.10.0 "
                "'asteval>=0.9.31,<0.10' scipy scikit-learn\n"
                "(or run `make install`, which does this)")


def lava_available() -> bool:
    return importlib.util.find_spec("lava") is not None


def require_lava(what: str = "the lava backend") -> None:
    """Raise a UsageError naming what to install, or apply the compatibility shims."""
    if not lava_available():
        raise UsageError(f"{what} needs lava-nc 0.10.0, which is not installed; {INSTALL_HINT}")
    from . import compat

    compat.apply()

"""A progress bar on a terminal, silence in pipes and CI."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm


def progress_bar(total: int | None, desc: str, unit: str = "sample") -> Any:
    """A tqdm bar on stderr; `bar.update(n)` fits the `progress(n)` callbacks of the
    simulators, Lava runs and calibration (unit "layer" for layer-wise calibration)."""
    quiet = not sys.stderr.isatty() or bool(os.environ.get("CI"))
    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, leave=False)

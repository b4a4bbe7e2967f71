"""A progress bar on a terminal, silence in pipes and CI."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm


def progress_bar(total: int, desc: str) -> Any:
    quiet = not sys.stderr.isatty() or bool(os.environ.get("CI"))
    return tqdm(total=total, desc=desc, unit="sample", disable=quiet, leave=False)

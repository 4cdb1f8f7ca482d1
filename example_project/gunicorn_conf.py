"""gunicorn settings for ``run.sh``: say when the server listens (the banner waits for it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def when_ready(server: Any) -> None:
    """Called by gunicorn's master once its socket listens: create ``$RUN_SH_READY_FILE``."""
    ready = os.environ.get("RUN_SH_READY_FILE")
    if ready:
        Path(ready).touch()

"""The separate venv that holds the peer packages: benchmarks/.venv-peers."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import ROOT

VENV = ROOT / "benchmarks" / ".venv-peers"
REQUIREMENTS = ROOT / "benchmarks" / "requirements-peers.txt"
BASE = ["-e", f"{ROOT}[redis]", "gunicorn", "psycopg[binary]", "dj-database-url"]


def peers_python() -> Path:
    """The venv's interpreter, created or brought up to date first."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + " ".join(BASE).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    print(f"Creating {VENV.relative_to(ROOT)} for the peer packages...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *BASE], check=True)
    subprocess.run([*pip, "--no-deps", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(wanted)
    return python


if __name__ == "__main__":
    print(peers_python())

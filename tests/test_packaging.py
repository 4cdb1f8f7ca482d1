"""The package as an index page shows it: a licence file in the wheel and the sdist, project
URLs, and README links that work away from the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from importlib.metadata import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPOSITORY = "https://github.com/idempotency-jobs/idempotency-jobs"


def test_the_licence_file_is_the_bsd_3_clause_licence():
    text = (ROOT / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == "BSD-3-Clause"
    assert re.search(r"Copyright \(c\) \d{4}, the idempotency_jobs authors", text)
    assert "Redistribution and use in source and binary forms" in text
    assert "3. Neither the name of the copyright holder nor the names of its" in text


def test_the_licence_file_goes_into_the_wheel_and_the_sdist():
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert "LICENSE" in PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    # license-files (PEP 639) needs hatchling 1.27.
    [hatchling] = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("hatchling")]
    assert hatchling == "hatchling>=1.27"


def test_the_project_urls_point_at_the_repository():
    urls = PYPROJECT["project"]["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
    assert all(url.startswith(REPOSITORY) for url in urls.values())
    assert urls["Documentation"] == f"{REPOSITORY}/tree/main/docs"


def test_the_installed_metadata_carries_the_licence_and_the_urls():
    meta = metadata("idempotency-jobs")
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta.get_all("License-File") == ["LICENSE"]
    urls = dict(entry.split(", ", 1) for entry in meta.get_all("Project-URL") or [])
    assert urls == PYPROJECT["project"]["urls"]


def test_readme_links_are_absolute():
    """The README is the index page's description: a relative link is broken there."""
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())
    assert links
    assert [link for link in links if not link.startswith("https://")] == []
    for link in links:
        if link.startswith(REPOSITORY):
            path = re.sub(rf"^{REPOSITORY}/(blob|tree)/main/", "", link).partition("#")[0]
            assert (ROOT / path).exists(), link


def test_the_repository_tracks_no_virtualenv_or_symlink():
    # A worktree's .venv symlink once slipped past `.venv/` in .gitignore (that pattern
    # matches directories only) and broke every clean clone's `make test`.
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    symlinks = [line.split("\t", 1)[1] for line in listing if line.startswith("120000 ")]
    venvs = [
        line.split("\t", 1)[1]
        for line in listing
        if line.split("\t", 1)[1].split("/", 1)[0].startswith(".venv")
    ]
    assert symlinks == []
    assert venvs == []

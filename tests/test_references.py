"""References from the code, tests and docs to the docs: each points at a page section that
exists. The behaviour contract's sections are docs/semantics.md's (the project's SPEC is not in
the repository, so "SPEC §n" would point nowhere)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"(?:\.\./)?((?:docs/)?[a-z_]+\.md)#([a-z0-9_\-]+)", re.I)


def tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed if name != "CHANGES.md"]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors: headings lower-cased, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(anchor)
    return found


def test_nothing_refers_to_the_spec_by_section_number() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in tracked("*.py", "*.md")
        if path != Path(__file__).resolve()  # it names what it looks for
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"SPEC\b(?!TACULAR)", line)
    ]
    assert offenders == []


def test_every_reference_to_a_docs_section_exists() -> None:
    checked = 0
    for path in tracked("*.py", "*.md"):
        for page, anchor in REFERENCE.findall(path.read_text()):
            # Relative to the file (a docs page's links), else to the repository's root.
            target = next((c for c in (path.parent / page, ROOT / page) if c.exists()), ROOT / page)
            assert target.exists(), (path.relative_to(ROOT), page)
            assert anchor.lower() in anchors(target), (path.relative_to(ROOT), page, anchor)
            checked += 1
    assert checked > 30

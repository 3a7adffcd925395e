"""The README documents every setting the code reads, and links only inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from core.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def documented_settings(readme: str) -> set[str]:
    """Names in the settings table; `HELPDESK_A_B` / `_C` also documents HELPDESK_A_C."""
    names: set[str] = set()
    for line in readme.splitlines():
        if not line.startswith("| `HELPDESK_"):
            continue
        first = line.split("|")[1]
        full = re.findall(r"`(HELPDESK_[A-Z0-9_]+)`", first)
        names.update(full)
        for suffix in re.findall(r"`(_[A-Z0-9_]+)`", first):
            parts = full[0].split("_")
            names.update("_".join(parts[:i]) + suffix for i in range(2, len(parts)))
    return names


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = {f"HELPDESK_{name.upper()}" for name in Settings.model_fields} - documented_settings(readme)
    assert missing == set()


def test_documentation_links_stay_inside_the_repository() -> None:
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        assert "../shared" not in text and "CONTRACT.md" not in text and "DESIGN.md" not in text, page
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if target.startswith(("http://", "https://")):
                continue
            assert (page.parent / target).resolve().is_relative_to(ROOT), (page, target)
            assert (page.parent / target).exists(), (page, target)

"""`.github/SECURITY.md` points every claim at a test: each file it names exists, and each `::test_name` it names is
a test function in that file (a claim whose test was renamed or removed fails here)."""
from __future__ import annotations

import re

from hubclient import REPO

DOC = REPO / ".github" / "SECURITY.md"


def references() -> list[tuple[str, str | None]]:
    """(path, test name or None) for every `path`, `path::name` and `::name` (same path as the one before) in
    backticks in the defence tables."""
    text = DOC.read_text()
    defences = text.split("## Defences", 1)[1].split("## Not covered", 1)[0]
    refs = []
    path = None
    for token in re.findall(r"`([^`]+)`", defences):
        m = re.fullmatch(r"((?:Tests|LoadTests)/[\w./-]+)(?:::(\w+))?", token)
        if m:
            path = m.group(1)
            refs.append((path, m.group(2)))
        elif token.startswith("::"):
            assert path, f"{token} before any path"
            refs.append((path, token[2:]))
    return refs


def test_every_test_named_by_the_security_policy_exists():
    refs = references()
    assert len(refs) > 60, f"only {len(refs)} references found: the parser no longer reads the tables"
    missing = []
    for path, name in refs:
        file = REPO / path
        if not file.exists():
            missing.append(path)
        elif name and not re.search(rf"^def {name}\(", file.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"SECURITY.md names tests that do not exist: {missing}"


def test_the_readme_links_the_security_policy():
    assert ".github/SECURITY.md" in (REPO / "README.md").read_text()

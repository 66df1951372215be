"""CODEOWNERS matching with GitHub's semantics (table-driven, examples from GitHub's docs)."""

from __future__ import annotations

import pytest

from bot.domain.governance.codeowners import find_codeowners, parse_codeowners

DOCS_EXAMPLE = """\
# Comment
*       @global-owner1 @global-owner2
*.js    @js-owner #This is an inline comment.
*.go docs@example.com
*.txt @octo-org/octocats
/build/logs/ @doctocat
docs/*  docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
"""

CASES = [
    ("README.md", ("@global-owner1", "@global-owner2")),
    ("src/app.js", ("@js-owner",)),
    ("main.go", ("docs@example.com",)),
    ("notes/a.txt", ("@octo-org/octocats",)),
    ("build/logs/x.log", ("@octocat",)),  # **/logs (later) wins over /build/logs/
    ("build/logs/deep/x.log", ("@octocat",)),
    ("docs/getting-started.md", ("@doctocat",)),  # /docs/ (later) wins over docs/*
    ("docs/build-app/troubleshooting.md", ("@doctocat",)),
    ("scripts/run.sh", ("@doctocat", "@octocat")),
    ("deep/logs/a", ("@octocat",)),
    ("apps/web/x.py", ("@octocat",)),
    ("apps/github/x.py", ()),  # a pattern without owners: un-owned
    ("sub/apps/x.py", ("@octocat",)),  # apps/ matches at any depth
]


@pytest.mark.parametrize(("path", "owners"), CASES, ids=[c[0] for c in CASES])
def test_last_matching_pattern_wins(path: str, owners: tuple[str, ...]) -> None:
    assert parse_codeowners(DOCS_EXAMPLE).owners_for(path) == owners


@pytest.mark.parametrize(
    ("pattern", "path", "owned"),
    [
        ("docs/*", "docs/a.md", True),
        ("docs/*", "docs/a/b.md", False),
        ("/clusters/prod/", "clusters/prod/eu/c.yaml", True),
        ("/clusters/prod/", "x/clusters/prod/c.yaml", False),
        ("clusters/prod/**", "clusters/prod/eu/c.yaml", True),
        ("clusters/*/kustomization.yaml", "clusters/dev/kustomization.yaml", True),
        ("clusters/*/kustomization.yaml", "clusters/dev/a/kustomization.yaml", False),
        ("*.yaml", "a/b/c.yaml", True),
        ("CODEOWNERS", "docs/CODEOWNERS", True),
        ("/CODEOWNERS", "docs/CODEOWNERS", False),
        ("**/secrets/**", "clusters/prod/secrets/s.yaml", True),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file10.txt", False),
    ],
)
def test_gitignore_like_patterns(pattern: str, path: str, owned: bool) -> None:
    assert bool(parse_codeowners(f"{pattern} @o").owners_for(path)) is owned


def test_unsupported_lines_are_reported_not_used() -> None:
    co = parse_codeowners("* @a\n!secret.txt @b\n[ab].txt @c\nx.txt not-an-owner @d\n")
    assert co.owners_for("secret.txt") == ("@a",)
    assert co.owners_for("a.txt") == ("@a",)
    assert co.owners_for("x.txt") == ("@d",)
    assert [p.line for p in co.problems] == [2, 3, 4]
    assert all(p.hint for p in co.problems)


def test_first_location_wins() -> None:
    co = find_codeowners(
        [(".github/CODEOWNERS", None), ("CODEOWNERS", "* @root"), ("docs/CODEOWNERS", "* @docs")]
    )
    assert co is not None and co.path == "CODEOWNERS" and co.owners_for("a") == ("@root",)
    assert find_codeowners([(".github/CODEOWNERS", None)]) is None

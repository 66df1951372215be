"""Untrusted text never crashes the parsers: CODEOWNERS, globs, commit objects."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.governance.codeowners import parse_codeowners
from bot.domain.governance.globs import env_from_path, glob_match
from bot.domain.governance.signatures import parse_commit

PATHS = st.lists(
    st.sampled_from(["a", "b", "clusters", "prod", "x.yaml", "*", "**", "?", "[", "\\", "."]), min_size=1
)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=40))
def test_codeowners_never_raises(text: str, path: str) -> None:
    co = parse_codeowners(text)
    owners = co.owners_for(path)
    assert all(isinstance(o, str) and o for o in owners)


@settings(max_examples=200, deadline=None)
@given(PATHS, PATHS)
def test_globs_never_raise_and_double_star_matches_all(pattern: list[str], path: list[str]) -> None:
    p = "/".join(path)
    glob_match("/".join(pattern), p)
    assert glob_match("**", p)
    assert env_from_path(["clusters/{env}/**"], p) in (None, *path)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_parse_commit_never_raises(raw: bytes) -> None:
    parsed = parse_commit("0" * 40, raw)
    assert parsed.payload is not None
    if b"gpgsig" not in raw:
        assert parsed.signature is None

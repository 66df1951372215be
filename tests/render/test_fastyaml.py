"""The fast YAML reader gives exactly what PyYAML's constructor gave, for every input.

:func:`reference_load_docs` is ``fastyaml.load_docs`` as it was before nodes were converted
by :func:`bot.domain.render.fastyaml._convert` (PyYAML's constructor, then ``_plain``).
Both are run on generated YAML (dumped data in every style, and streams assembled from
fragments that exercise tags, anchors, merge keys, odd keys, directives and errors) and on
every YAML file of the repository; results must be equal with the same types, the same key
order and the same line numbers, and errors must be the same errors.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import yamlio
from bot.domain.render import fastyaml
from tests.conftest import ROOT

# Generated streams reuse anchor names; yamlio (ruamel) warns about it on both sides alike.
pytestmark = pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")


def reference_load_docs(text: str, path: str) -> list[tuple[int, Any]]:
    """Return what ``fastyaml.load_docs`` returned before the fast conversion (kept verbatim)."""
    if len(text.encode("utf-8", errors="replace")) > yamlio.MAX_BYTES or "\x00" in text:
        return fastyaml._slow(text, path)
    if "&" not in text:
        try:
            loaded = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
        except (yaml.YAMLError, RecursionError):
            return fastyaml._slow(text, path)
        lines = fastyaml._doc_lines(text)
        if len(lines) != len(loaded):
            lines = [1] * len(loaded)
        return [(line, fastyaml._plain(d)) for line, d in zip(lines, loaded, strict=True) if d is not None]
    loader = yaml.CSafeLoader(text)
    docs: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            fastyaml._check(node, 1, set())
            data = loader.construct_document(node)
            if data is not None:
                docs.append((node.start_mark.line + 1, fastyaml._plain(data)))
    except (fastyaml._Fallback, yaml.YAMLError, RecursionError):
        return fastyaml._slow(text, path)
    finally:
        loader.dispose()
    return docs


def same(a: Any, b: Any) -> bool:
    """Equal with the same types and key order (so 1 is not True and NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or repr(a) == repr(b)
    return bool(a == b)


def outcome(fn: Callable[[str], Any], text: str) -> tuple[str, Any]:
    try:
        return "ok", fn(text)
    except Exception as exc:  # the same exception, not only the same kind of failure
        return "error", (type(exc), str(exc))


def assert_same_everywhere(text: str) -> None:
    old = outcome(lambda t: reference_load_docs(t, "x.yaml"), text)
    readers: list[Callable[[str], Any]] = [
        lambda t: fastyaml.load_docs(t, "x.yaml"),
        lambda t: fastyaml._load_docs(t, "x.yaml", shared=True),  # per-document memo, no per-file memo
        lambda t: fastyaml.load_docs_shared(t, "x.yaml"),
    ]
    for reader in readers:
        new = outcome(reader, text)
        assert new[0] == old[0] and same(new[1], old[1]), (text, new, old)
    pairs: list[tuple[Callable[[str], Any], Callable[[str], Any]]] = [
        (fastyaml.load_all, lambda t: list(yaml.load_all(t, Loader=yaml.CSafeLoader))),
        (fastyaml.load, lambda t: yaml.load(t, Loader=yaml.CSafeLoader)),
    ]
    for fast, reference in pairs:
        new, old = outcome(fast, text), outcome(reference, text)
        assert new[0] == old[0] and same(new[1], old[1]), (text, fast.__name__, new, old)


TRICKY = [
    "yes", "No", "on", "OFF", "y", "n", "true", "False", "null", "Null", "~", "", " ", "0", "-0", "+1",
    "012", "0o17", "0x1F", "0b101", "1_000", "1:20", "190:20:30", "1.5", "-.5e3", "1e3", "6.8523015e+5",
    ".inf", "-.Inf", ".NaN", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2002-12-14 21:59:43", "=",
    "<<", "- x", "a: b", "#c", "x #c", "'q'", '"d"', "!tag", "*alias", "&anchor", "[1]", "{a: 1}", "|",
    ">", "---", "...", "%", "@", "`", "tab\there", "multi\nline", "trailing ", "\u00e9t\u00e9", "\U0001f680",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from(TRICKY),
    st.text(max_size=12),
    st.dates(min_value=datetime.date(1900, 1, 1)),
    st.datetimes(min_value=datetime.datetime(1900, 1, 1)),
    st.binary(max_size=6),
)
keys = st.one_of(st.sampled_from(TRICKY), st.text(max_size=8), st.integers(-5, 5), st.booleans(), st.none())
data = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=25,
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(data, min_size=0, max_size=3),
    flow=st.sampled_from([None, True, False]),
    style=st.sampled_from([None, '"', "'", "|", ">"]),
    start=st.booleans(),
    end=st.booleans(),
    unicode=st.booleans(),
    width=st.sampled_from([20, 80, 10_000]),
    sort=st.booleans(),
)
def test_dumped_yaml_in_every_style_loads_exactly_as_before(
    docs: list[Any],
    flow: bool | None,
    style: str | None,
    start: bool,
    end: bool,
    unicode: bool,
    width: int,
    sort: bool,
) -> None:
    text = yaml.dump_all(
        docs,
        Dumper=yaml.SafeDumper,
        default_flow_style=flow,
        default_style=style,
        explicit_start=start,
        explicit_end=end,
        allow_unicode=unicode,
        width=width,
        sort_keys=sort,
    )
    assert_same_everywhere(text)


FRAGMENTS = [
    "a: 1", "a: 2", "1: one", "1.0: float one", "true: t", "~: n", "null: n", "=: v", "? [a, b]\n: c",
    "? {a: 1}\n: d", "<<: {b: 2}", "<<: [{c: 3}, {d: 4}]", "<<: *x", "base: &x {a: 1}", "ref: *x",
    "- &y [1, 2]", "- *y", "k: !!int 12", "k: !!int '12'", "k: !!int abc", "k: !!str 12", "k: !!float 1",
    "k: !!bool yes", "k: !!bool maybe", "k: !!null x", "k: !!binary aGVsbG8=", "k: !!timestamp 2001-12-14",
    "k: !!set {a, b}", "k: !!omap [a: 1, b: 2]", "k: !!pairs [a: 1]", "k: !!seq x", "k: !!map x",
    "!!map {a: 1}", "!!str {a: 1}", "!custom foo", "k: !custom {a: 1}", "k: !<tag:yaml.org,2002:str> 1",
    "k: 2001-12-14", "k: 0x1F", "k: 017", "k: 1_000", "k: 1:20", "k: .inf", "k: .NaN", "k: -.5e3",
    "k: ''", 'k: "x\\ty"', "k: [1, 2, {a: b}]", "k: {a: 1, a: 2}", "\tk: tab", "k: v # comment",
    "# comment", "", "k:", "k: null", "k: ~", "k: NULL", "k: On", "k: y", "k: n", "[1, 2]", "- x", "- - y",
    "  - nested", "    deep: 1", "k: |\n  text\n  more", "k: >-\n  folded\n  text", "---", "--- x",
    "--- |\n  block", "...", "%YAML 1.1\n---", "%TAG !e! tag:example.com,2000:\n---", "k: !e!thing 1",
    ": nokey", "k: 'unterminated", "k: [unclosed", "k: v\n  bad: indent", "a&b: c", "k: a&b", "k: *",
    "kind: Kustomization", "apiVersion: kustomize.toolkit.fluxcd.io/v1", "metadata:\n  name: x",
    "k: |+\n  kept\n\n", "k: |-\n  stripped\n\n", "k: >+\n  folded kept\n\n", "k: plain\n  continued",
    "---\n", "----", "--- # c", "---\t", "...\n---", "k: 'quoted\n---\n  on'", "k: v\r\n---\r\nj: w",
    "----: dashes", "---x: y", "...: dots", "...x", "%x: pct", "- ----", "---\n...\n",
    "k: \"\\u00e9\"", "k: \u00e9t\u00e9", "k: 'it''s'", "k: @reserved", "k: `tick", "? complex\n: value",
]  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["", "  ", "    ", "- "]), st.sampled_from(FRAGMENTS)),
        min_size=1,
        max_size=8,
    )
)
def test_assembled_yaml_with_tags_anchors_merges_and_errors_loads_exactly_as_before(
    parts: list[tuple[str, str]],
) -> None:
    assert_same_everywhere("\n".join(indent + fragment for indent, fragment in parts) + "\n")


REPO_YAML = sorted(
    p
    for base in (ROOT / "examples", ROOT / "tests" / "fixtures")
    for p in base.rglob("*")
    if p.suffix in (".yaml", ".yml") and p.is_file()
)


def test_the_repository_has_yaml_files_to_compare() -> None:
    assert len(REPO_YAML) > 50


@pytest.mark.parametrize("path", REPO_YAML, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_yaml_file_of_the_repository_loads_exactly_as_before(path: Path) -> None:
    assert_same_everywhere(path.read_text(encoding="utf-8", errors="replace"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1: a\ntrue: b\n", [(1, {"1": "b"})]),  # 1 and true are one key to PyYAML; the last value wins
        ("a: 1\na: 2\n", [(1, {"a": 2})]),
        ("k: 2001-12-14\n", [(1, {"k": "2001-12-14"})]),  # a timestamp goes through PyYAML, as text
        ("---\n---\nk: 0x1F\n", [(3, {"k": 31})]),
        ("<<: {b: 2}\na: 1\n", [(1, {"b": 2, "a": 1})]),
    ],
)
def test_edge_cases_read_as_pyyaml_reads_them(text: str, expected: list[tuple[int, Any]]) -> None:
    assert same(fastyaml.load_docs(text, "x.yaml"), expected)
    assert same(reference_load_docs(text, "x.yaml"), expected)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\n----: x\n---\nb: 2\n",
        "a: 1\n---x: y\n---\nb: 2\n",
        "a: 1\n...x: y\n---\nb: 2\n",
        "%YAML 1.1\n---\na: 1\n---\nb: 2\n",
        "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n---\nb: !e!y 2\n",
        "a: 1\n...\n---\nb: 2\n",
        "a: 1\n...\nb: 2\n---\nc: 3\n",
        "---\na: |+\n  kept\n\n\n---\nb: 2\n",
        "---\na: >\n  folded\n  text\n---\nb: 2\n",
        "a: b\n  c\n---\nd: 1\n",
        "--- # c\na: 1\n---\nb: 2\n",
        "--- \na: 1\n---\nb: 2\n",
        "a: 1\n---\t\nb: 2\n---\nc: 3\n",
        "a: 1\r\n---\r\nb: 2\r\n",
        "\ufeffa: 1\n---\nb: 2\n",
        "a: 1\n\u2028---\u2028b: 2\n---\nc: 3\n",
        "a: 1\n---\n",
        "---\n---\n---\n",
        "# only a comment\n---\na: 1\n",
        "a: 'x\n---\n  y'\n---\nb: 1\n",
        "a: [1,\n---\n2]\n---\nb: 1\n",
        "a:\n  - 1\n---\n- 2\n---\n3\n",
        "a: 1\nb\n---\nc: 2\n",
        "a: 2001-12-14\n---\nb: 1\n",
        "a: 1\n---\nb: !!binary aGVsbG8=\n",
    ],
)
def test_streams_cut_at_document_markers_read_as_whole_streams(text: str) -> None:
    assert_same_everywhere(text)


def test_identical_documents_of_different_files_are_converted_once() -> None:
    fastyaml.forget()
    doc = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app\n"
    first = fastyaml.load_docs_shared(f"{doc}---\n{doc}", "clusters/a/flux.yaml")
    second = fastyaml.load_docs_shared(f"# cluster b\n---\n{doc}", "clusters/b/flux.yaml")
    assert [line for line, _ in first] == [1, 6] and [line for line, _ in second] == [3]
    assert (
        first[0][1]
        == second[0][1]
        == {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "app"},
        }
    )
    assert first[1][1] is second[0][1]  # the same "---" piece: converted once, shared

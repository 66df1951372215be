"""The fast dumper writes exactly the text PyYAML's dumper writes, and Flux substitution is unchanged.

Generated data (every scalar type, tricky strings, non-string keys, dates, bytes, the same
container twice) is dumped both ways and compared byte for byte; substitution is compared
with the PyYAML dump/load round trip it replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import yamldump
from bot.domain.diff import to_yaml
from bot.domain.render.flux import object_text, substitute_object, substitute_text
from tests.render.test_fastyaml import TRICKY, data, outcome, same


def reference_dump(value: Any, sort_keys: bool, dumper: type = yaml.CSafeDumper) -> str:
    text: str = yaml.dump(value, Dumper=dumper, sort_keys=sort_keys, default_flow_style=False, width=10_000)
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=data, sort_keys=st.booleans())
def test_dump_writes_what_pyyaml_writes(value: Any, sort_keys: bool) -> None:
    assert outcome(lambda v: yamldump.dump(v, sort_keys=sort_keys), value) == outcome(
        lambda v: reference_dump(v, sort_keys), value
    )


def reference_block_dump(value: Any, sort_keys: bool) -> str:
    return reference_dump(value, sort_keys, yamldump.BlockDumper)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=data, sort_keys=st.booleans())
def test_block_strings_dump_writes_what_pyyaml_block_dumper_writes_and_loads_back(
    value: Any, sort_keys: bool
) -> None:
    fast = outcome(lambda v: yamldump.dump(v, sort_keys=sort_keys, block_strings=True), value)
    assert fast == outcome(lambda v: reference_block_dump(v, sort_keys), value)


def test_a_one_word_change_in_an_embedded_json_or_rego_is_one_changed_diff_line() -> None:
    import difflib
    import json

    board = {
        "title": "Fleet",
        "panels": [{"id": i, "title": f"panel {i}", "type": "graph"} for i in range(200)],
    }
    rego = (
        'package k8srequiredlabels\n\nviolation[{"msg": msg}] {\n'
        "  provided := {l | l := input.review.object.metadata.labels[l]}\n"
        '  msg := "missing labels"\n}\n'
    )
    before = {"kind": "ConfigMap", "data": {"board.json": json.dumps(board, indent=2), "policy.rego": rego}}
    board["panels"][100]["type"] = "table"
    after = {
        "kind": "ConfigMap",
        "data": {"board.json": json.dumps(board, indent=2), "policy.rego": rego.replace("missing", "absent")},
    }
    a, b = to_yaml(before), to_yaml(after)
    assert "board.json: |-" in a and "policy.rego: |" in a
    changed = [
        line
        for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == [
        '-          "type": "graph"',
        '+          "type": "table"',
        '-      msg := "missing labels"',
        '+      msg := "absent labels"',
    ]
    assert yaml.safe_load(b) == after
    assert max(len(line) for line in b.splitlines()) < 120


@settings(max_examples=100, deadline=None)
@given(value=st.dictionaries(st.text(max_size=6), data, max_size=4), sort_keys=st.booleans())
def test_a_container_met_twice_is_written_with_an_anchor_as_pyyaml_does(
    value: dict[str, Any], sort_keys: bool
) -> None:
    shared = {"shared": [1, 2]}
    doubled = {**value, "a": shared, "b": shared}
    assert yamldump.dump(doubled, sort_keys=sort_keys) == reference_dump(doubled, sort_keys)
    assert "&id001" in yamldump.dump(doubled, sort_keys=sort_keys)


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        {"a": {}, "b": [], "c": [[]], "d": [{}]},
        {1: "int key", "s": 2},
        {"when": __import__("datetime").date(2024, 1, 2)},
        {"raw": b"\x00\x01"},
        {"t": (1, 2)},
        {"f": 1e17, "g": -0.0, "h": float("inf"), "i": float("nan")},
        {"long": "x" * 20_000, "multi": "a\nb\n", "lead": " space", "colon": "a: b", "hash": "a #b"},
        {"yes": "yes", "null": None, "bool": True, "num": "012", "ts": "2001-12-14"},
    ],
    ids=lambda v: repr(v)[:40],
)
def test_edge_values_dump_as_pyyaml_dumps_them(value: Any) -> None:
    for sort_keys in (True, False):
        assert yamldump.dump(value, sort_keys=sort_keys) == reference_dump(value, sort_keys)
        block = yamldump.dump(value, sort_keys=sort_keys, block_strings=True)
        assert block == reference_block_dump(value, sort_keys)
    if isinstance(value, dict):
        assert to_yaml(value) == reference_block_dump(value, True)


def reference_substitute(obj: dict[str, Any], variables: Mapping[str, str]) -> dict[str, Any]:
    """Flux substitution as it was before the fast dumper and loader (kept verbatim)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get("kustomize.toolkit.fluxcd.io/substitute", "")).lower() == "disabled":
        return obj
    text = yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=False, width=10_000)
    if "${" not in text:
        return obj
    new = yaml.load(substitute_text(text, variables), Loader=yaml.CSafeLoader)
    return new if isinstance(new, dict) else obj


NAMES = ["cluster", "env", "region", "missing"]
references = st.sampled_from(
    ["${cluster}", "${env}", "x-${region}-y", "${missing:=dflt}", "${missing:-}", "$${cluster}", "${env}: v"]
)
flux_values = st.one_of(references, st.sampled_from(TRICKY), st.integers(-3, 3), st.booleans(), st.none())
flux_objects = st.recursive(
    flux_values,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(NAMES), references), children, max_size=3),
    ),
    max_leaves=12,
)
variable_values = st.one_of(
    st.sampled_from(["prod-use1", "", "123", "true", "null", "a: b", "- x", "'q'", "x\ny", "{a: 1}", "#"]),
    st.text(max_size=6),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.dictionaries(st.sampled_from(["spec", "data", "env", "${cluster}"]), flux_objects, max_size=3),
    variables=st.dictionaries(st.sampled_from(NAMES[:3]), variable_values),
    disabled=st.booleans(),
    give_text=st.booleans(),
)
def test_flux_substitution_gives_what_the_pyyaml_round_trip_gave(
    body: dict[str, Any], variables: dict[str, str], disabled: bool, give_text: bool
) -> None:
    meta: dict[str, Any] = {"name": "x"}
    if disabled:
        meta["annotations"] = {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **body}
    text = object_text(obj) if give_text else None
    new = outcome(lambda o: substitute_object(o, variables, text=text), obj)
    old = outcome(lambda o: reference_substitute(o, variables), obj)
    assert new[0] == old[0] and same(new[1], old[1]), (obj, variables, new, old)

"""Validation parses each distinct file once (keyed by git blob id), and unchanged tree files fast.

A fleet whose clusters each carry a large flux-system ``gotk-components.yaml`` used to have every
copy parsed by the round-trip parser for every check (the CRD index of the head tree); now
a file that did not change is read by the C parser only for its facts, and any content is
parsed once whatever its path, revision or event.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.domain.validate import base
from bot.domain.validate.base import blob_id, forget_parses, parse_docs, parse_tree_docs
from bot.prchecks.build import build_check
from bot.render_runtime.engine import forget_memos
from tests.render.conftest import commit, git
from tests.support.gitrepo import GitRepo

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
"""


def test_blob_id_is_git_hash_object(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text(CRD)
    out = subprocess.run(["git", "hash-object", str(tmp_path / "f.yaml")], capture_output=True, text=True)
    assert blob_id(CRD) == out.stdout.strip()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the round-trip parser reads from now on (the parse cache starts empty)."""
    forget_parses()
    calls: list[str] = []
    real = base.load_documents

    def recording(text: str, rel: str) -> list:
        calls.append(rel)
        return real(text, rel)

    monkeypatch.setattr(base, "load_documents", recording)
    return calls


def test_the_same_content_is_parsed_once_whatever_its_path(round_trips: list[str]) -> None:
    calls = round_trips
    a, _ = parse_docs(CRD, "clusters/a/crd.yaml")
    b, _ = parse_docs(CRD, "clusters/b/crd.yaml")
    assert calls == ["clusters/a/crd.yaml"]
    assert [d.path for d in b] == ["clusters/b/crd.yaml"] and b[0].data == a[0].data
    bad = "a: [1\n"
    _, p1 = parse_docs(bad, "x.yaml")
    _, p2 = parse_docs(bad, "y.yaml")
    assert [f.path for f in p1] == ["x.yaml"] and [f.path for f in p2] == ["y.yaml"]
    assert p1[0].message == p2[0].message and len(calls) == 2


def test_tree_facts_read_the_same_data_without_the_round_trip_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_parses()
    slow, _ = parse_docs(CRD, "crd.yaml")
    forget_parses()
    monkeypatch.setattr(base, "load_documents", lambda *_a: pytest.fail("round-trip parser used"))
    fast, _ = parse_tree_docs(CRD, "crd.yaml")
    assert [d.data for d in fast] == [d.data for d in slow]
    assert fast[0].line_at(["spec", "group"]) == 1  # no positions: the document's first line


def _components(version: str) -> str:
    return (
        f"# Flux Version: {version}\n---\n"
        + CRD
        + "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n"
    )


def test_a_one_line_pr_never_round_trip_parses_the_unchanged_clusters_components(
    tmp_path: Path, round_trips: list[str]
) -> None:
    repo = GitRepo(tmp_path / "fleet").path
    files = {}
    for i in range(4):
        files[f"clusters/c{i}/flux-system/gotk-components.yaml"] = _components(f"v2.{i}.0")
        files[f"clusters/c{i}/widget.yaml"] = (
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n"
            f"  name: w{i}\n  namespace: default\nspec:\n  size: 1\n"
        )
    commit(repo, files, "fleet")
    git(repo, "checkout", "-q", "-b", "pr")
    commit(
        repo, {"clusters/c1/widget.yaml": files["clusters/c1/widget.yaml"].replace("size: 1", "size: big")}
    )
    parsed = round_trips
    forget_memos()
    forget_parses()
    result = build_check(repo, "main", "pr", secret_key=b"k")
    assert not any("gotk-components" in p for p in parsed), parsed
    # the CRD from the unchanged components still validates the changed Widget
    assert any(f.rule == "schema" and f.path == "clusters/c1/widget.yaml" for f in result.report.findings)
    parsed.clear()
    again = build_check(repo, "main", "pr", secret_key=b"k")  # the next event: nothing parsed again
    assert parsed == []
    assert again.report.findings == result.report.findings

from __future__ import annotations

import pytest

from bot.domain.yamlio import YamlError, line_of_path, load_documents, load_yaml_text


def test_multi_document_lines() -> None:
    docs = load_documents("a: 1\n---\nb:\n  c: 2\n", "f.yaml")
    assert [d.line for d in docs] == [1, 3]


def test_duplicate_key_is_pinned() -> None:
    with pytest.raises(YamlError) as err:
        load_documents("a: 1\na: 2\n", "f.yaml")
    assert err.value.finding.rule == "yaml.duplicate-key"
    assert err.value.finding.line == 2


def test_alias_bomb_is_refused() -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join(["*" + chr(97 + i)] * 9) + "]\n" for i in range(8)
    )
    with pytest.raises(YamlError) as err:
        load_yaml_text(bomb, "bomb.yaml")
    assert "alias bomb" in err.value.finding.message


def test_deep_nesting_and_binary_are_refused() -> None:
    with pytest.raises(YamlError):
        load_documents("a: " + "[" * 100 + "]" * 100 + "\n", "deep.yaml")
    with pytest.raises(YamlError):
        load_documents("a: 1\x00\n", "bin.yaml")


def test_line_of_path() -> None:
    doc = load_documents("x:\n  y: 1\n  z:\n    - 1\n    - q: 2\n", "f.yaml")[0].data
    assert line_of_path(doc, ["x", "z", 1, "q"]) == 5

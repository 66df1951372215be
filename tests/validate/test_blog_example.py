"""The cluster example teams copy from blog posts gets correct, clear findings with lines and hints."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.domain.config import parse_config
from bot.domain.model import CheckInput, Severity
from bot.domain.validate import annotations, validate, validation_summary
from tests.conftest import FIXTURES
from tests.validate.helpers import TODAY

BLOG = FIXTURES / "validate" / "blog"
FILE = "clusters/dev/eks-cluster.yaml"


def _line(needle: str) -> int:
    for number, line in enumerate((BLOG / FILE).read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_blog_example_findings(tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(BLOG / ".github", base / ".github")
    config = parse_config((base / ".github" / "gitops-bot.yml").read_text())
    check = CheckInput(base_dir=base, head_dir=BLOG, config=config, changed_paths=(FILE,))
    findings = validate(check, today=TODAY)
    got = {(f.rule, f.line) for f in findings}
    assert got == {
        ("schema.unknown-kind", _line("apiVersion: kro.io/v1alpha1")),
        ("eks.version", _line('version: "1.29"')),
        ("fleet.instance-type", _line("- c7i.8xlarge")),
        ("fleet.scaling", _line("maxSize: 50")),
        ("fleet.tags", _line("forProvider:")),
        ("fleet.tags", _line("forProvider:") + 15),
    }
    assert all(f.severity is Severity.ERROR and f.hint for f in findings)
    by_rule = {f.rule: f for f in findings}
    assert "kro.run" in by_rule["schema.unknown-kind"].hint
    assert "ResourceGraphDefinition" in by_rule["schema.unknown-kind"].hint
    assert "v0.2" in by_rule["schema.unknown-kind"].hint
    assert "1.29 is out of EKS support" in by_rule["eks.version"].message
    assert "2025-03-23" in by_rule["eks.version"].message
    assert "1.35" in by_rule["eks.version"].hint
    assert "c7i.8xlarge" in by_rule["fleet.instance-type"].message
    assert "cap of 20" in by_rule["fleet.scaling"].message
    assert "team, environment, cost-center" in by_rule["fleet.tags"].message

    title, summary = validation_summary(findings)
    assert title == "Validation failed: 6 errors"
    assert "| :x: | `eks.version` | `clusters/dev/eks-cluster.yaml:" in summary
    notes = annotations(findings)
    assert len(notes) == 6 and {n["annotation_level"] for n in notes} == {"failure"}
    assert all(n["path"] == FILE and n["start_line"] == n["end_line"] for n in notes)


def test_fixed_blog_example_is_clean(tmp_path: Path) -> None:
    text = (BLOG / FILE).read_text()
    fixed = (
        text.replace("kro.io/v1alpha1", "kro.run/v1alpha1")
        .replace("kind: ResourceGroup", "kind: ResourceGraphDefinition")
        .replace('"1.29"', '"1.34"\n            tags: {team: a, environment: dev, cost-center: cc-1}')
        .replace("c7i.8xlarge", "c7i.xlarge")
        .replace("maxSize: 50", "maxSize: 15")
        .replace(
            "desiredSize: 10",
            "desiredSize: 10\n            tags: {team: a, environment: dev, cost-center: cc-1}",
        )
    )
    head = tmp_path / "head"
    shutil.copytree(BLOG, head)
    (head / FILE).write_text(fixed)
    config = parse_config((BLOG / ".github" / "gitops-bot.yml").read_text())
    check = CheckInput(base_dir=BLOG, head_dir=head, config=config, changed_paths=(FILE,))
    assert validate(check, today=TODAY) == []


def _without_template(text: str) -> str:
    """The write-up shape: each resource's object written straight under the resource, no ``template:``."""
    out = []
    inside = False
    for line in text.splitlines():
        if line.strip() == "template:":
            inside = True
            continue
        if inside and line.startswith("        "):
            line = line[2:]
        elif inside and line.strip() and not line.startswith("        "):
            inside = line.startswith("    - ")
        out.append(line)
    return "\n".join(out) + "\n"


def test_kro_resources_without_template_still_get_the_cluster_request_rules(tmp_path: Path) -> None:
    """Copied without ``template:`` (issue 14 item 5): the wrapped Cluster and NodeGroup are still judged."""
    head = tmp_path / "head"
    shutil.copytree(BLOG, head)
    text = _without_template((BLOG / FILE).read_text())
    assert "template:" not in text and "    - id: cluster\n      apiVersion: eks.aws.crossplane.io" in text
    (head / FILE).write_text(text)
    config = parse_config((BLOG / ".github" / "gitops-bot.yml").read_text())
    check = CheckInput(base_dir=BLOG, head_dir=head, config=config, changed_paths=(FILE,))
    findings = validate(check, today=TODAY)
    lines = text.splitlines()

    def line(needle: str) -> int:
        return next(n for n, text_line in enumerate(lines, 1) if needle in text_line)

    got = {(f.rule, f.line) for f in findings}
    assert {
        ("eks.version", line('version: "1.29"')),
        ("fleet.instance-type", line("- c7i.8xlarge")),
        ("fleet.scaling", line("maxSize: 50")),
    } <= got
    structural = [f for f in findings if f.rule == "kro.resources"]
    assert len(structural) == 2 and all("Put the object under template:" in f.hint for f in structural)
    assert {f.rule for f in findings} >= {"fleet.tags", "schema.unknown-kind"}

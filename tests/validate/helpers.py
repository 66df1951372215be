"""Build small base/head repository trees and run the validator on them."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path
from typing import Any

from bot.domain.model import CheckInput, Finding, RenderedObject
from bot.domain.validate import validate
from bot.domain.validate.eks import EksCatalog

TODAY = date(2026, 11, 21)

FLEET_CONFIG: dict[str, Any] = {
    "version": 1,
    "cluster_requests": {"paths": ["clusters/**"]},
    "fleet": {
        "allowed_regions": ["eu-west-1", "us-east-1"],
        "allowed_instance_types": ["m6i.*", "c7i.large", "c7i.xlarge"],
        "required_tags": ["team", "environment", "cost-center"],
        "environments": {
            "dev": {"max_nodes": 20, "account_id": "111111111111"},
            "prod": {"max_nodes": 200, "account_id": "333333333333"},
        },
        "subnet_zones": {
            "subnet-a": "eu-west-1a",
            "subnet-b": "eu-west-1b",
            "subnet-c": "eu-west-1c",
            "subnet-d": "eu-west-1a",
        },
    },
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path -> text, dedented) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def run(
    tmp_path: Path,
    head: dict[str, str],
    *,
    base: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    changed: list[str] | None = None,
    rendered: tuple[RenderedObject, ...] = (),
    eks: EksCatalog | None = None,
) -> list[Finding]:
    """Validate ``head`` against ``base`` with ``config`` (default: the example fleet config)."""
    base_dir = write_tree(tmp_path / "base", base or {})
    head_dir = write_tree(tmp_path / "head", {**(base or {}), **head})
    check = CheckInput(
        base_dir=base_dir,
        head_dir=head_dir,
        config=FLEET_CONFIG if config is None else config,
        changed_paths=tuple(changed if changed is not None else head),
        rendered_head=rendered,
    )
    return validate(check, eks=eks, today=TODAY)


def rules(findings: list[Finding]) -> list[tuple[str, int]]:
    """Return (rule, line) of every finding."""
    return [(f.rule, f.line) for f in findings]


def crossplane_cluster(
    name: str = "payments-dev",
    version: str = '"1.34"',
    extra: str = "",
    region: str = "eu-west-1",
    subnets: str = "[subnet-a, subnet-b]",
    env: str = "dev",
) -> str:
    return f"""
    apiVersion: eks.aws.crossplane.io/v1beta1
    kind: Cluster
    metadata:
      name: {name}
    spec:
      forProvider:
        region: {region}
        version: {version}
        roleArn: arn:aws:iam::111111111111:role/eks
        resourcesVpcConfig:
          subnetIds: {subnets}
        tags:
          team: payments
          environment: {env}
          cost-center: cc-1234{extra}
    """


def crossplane_nodegroup(
    name: str = "payments-dev-workers",
    cluster: str = "payments-dev",
    sizes: str = "1, 5, 2",
    itype: str = "m6i.large",
    version: str = "",
) -> str:
    lo, hi, want = (s.strip() for s in sizes.split(","))
    ver = f"\n        version: {version}" if version else ""
    return f"""
    apiVersion: eks.aws.crossplane.io/v1alpha1
    kind: NodeGroup
    metadata:
      name: {name}
    spec:
      forProvider:
        region: eu-west-1
        clusterName: {cluster}{ver}
        instanceTypes: [{itype}]
        scalingConfig:
          minSize: {lo}
          maxSize: {hi}
          desiredSize: {want}
        tags: {{team: payments, environment: dev, cost-center: cc-1234}}
    """

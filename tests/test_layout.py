"""Architecture rules that keep the domain pure and the simulator out of production code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IO_LIBRARIES = {"aiohttp", "gidgethub", "boto3", "botocore", "kubernetes", "asyncpg", "aiosqlite"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_imports_no_io_library() -> None:
    offenders = {}
    files = list((ROOT / "bot" / "domain").rglob("*.py"))
    assert files, "bot/domain must exist"
    for path in files:
        bad = {n for n in _imports(path) if n.split(".")[0] in IO_LIBRARIES}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_production_code_never_imports_the_simulator() -> None:
    offenders = []
    for base in ("bot", "handlers"):
        for path in (ROOT / base).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("bot", "sim") or (
                rel.name in {"demo.py", "sim.py"} and rel.parts[1] == "cli"
            ):
                continue
            if any(n == "bot.sim" or n.startswith("bot.sim.") for n in _imports(path)):
                offenders.append(str(rel))
    assert offenders == []

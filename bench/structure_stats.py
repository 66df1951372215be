"""Structure figures for the package layout: lines per top-level module and imports between them.

Run: ``python bench/structure_stats.py [root]`` (root defaults to the repository). Prints lines of Python
per package under bot/ and handlers/, and the number of distinct (importing module, imported module)
pairs that cross from one top-level unit to another. A "unit" is a first-level entry of bot/ (a package
such as bot.domain, or a loose module) or handlers. Used for issue 16's before/after.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "bot" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - (1 if is_package else 0)
                base = base[: len(base) - drop] if drop else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
    return {name for name in found if name.split(".")[0] in {"bot", "handlers"}}


def main(root: Path) -> None:
    lines: Counter[str] = Counter()
    edges: set[tuple[str, str]] = set()
    unit_edges: set[tuple[str, str]] = set()
    for top in ("bot", "handlers"):
        for path in sorted((root / top).rglob("*.py")):
            module = _module_name(root, path)
            text = path.read_text(encoding="utf-8")
            lines[_unit(module)] += text.count("\n")
            tree = ast.parse(text)
            for target in _imports(tree, module, path.name == "__init__.py"):
                if _unit(target) != _unit(module):
                    edges.add((module, target))
                    unit_edges.add((_unit(module), _unit(target)))
    tests = sum(p.read_text(encoding="utf-8").count("\n") for p in (root / "tests").rglob("*.py"))
    print(f"{'unit':32} lines")
    for unit, count in sorted(lines.items()):
        print(f"{unit:32} {count:6}")
    print(f"{'total bot+handlers':32} {sum(lines.values()):6}")
    print(f"{'tests':32} {tests:6}")
    print(f"top-level units: {len(lines)}")
    print(f"imports crossing top-level units (module -> module): {len(edges)}")
    print(f"distinct unit -> unit dependencies: {len(unit_edges)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)

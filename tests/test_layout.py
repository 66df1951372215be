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


# --- layering (issue 16) -------------------------------------------------------------------------

#: What bot/domain never imports: processes, scratch files, git and GitHub access, handlers, and
#: the adapters that run engines or hold state (rendering, the store, the service).
DOMAIN_FORBIDDEN = (
    "subprocess",
    "tempfile",
    "bot.git",
    "bot.github",
    "handlers",
    "bot.render_runtime",
    "bot.queue",
    "bot.service",
    "bot.prchecks.publish",
    "bot.cli",
    "bot.sim",
)

#: The composition roots: the only modules that import ``handlers`` (they build the router).
HANDLER_IMPORTERS = ("bot.service.app", "bot.cli", "bot.sim", "bot.__main__")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _runtime_imports(path: Path) -> set[str]:
    """Absolute and relative imports of ``path`` as module names, ``if TYPE_CHECKING:`` blocks left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _sources() -> list[Path]:
    return [p for base in ("bot", "handlers") for p in sorted((ROOT / base).rglob("*.py"))]


def _named(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_domain_runs_no_process_and_reaches_no_adapter() -> None:
    offenders = {}
    for path in (ROOT / "bot" / "domain").rglob("*.py"):
        bad = sorted(n for n in _runtime_imports(path) if _named(n, DOMAIN_FORBIDDEN))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_only_the_app_and_the_cli_import_handlers() -> None:
    offenders = []
    for path in (ROOT / "bot").rglob("*.py"):
        module = _module(path)
        if _named(module, HANDLER_IMPORTERS):
            continue
        if any(_named(n, ("handlers",)) for n in _runtime_imports(path)):
            offenders.append(module)
    assert offenders == []


#: Units whose imports must form no cycle: each package of bot/ (bot.crds is the domain's bundled
#: data), and handlers. The composition roots (app, CLI, simulator) sit on top and are left out.
def _unit(module: str) -> str | None:
    if _named(module, HANDLER_IMPORTERS):
        return None
    parts = module.split(".")
    if parts[0] == "handlers":
        return "handlers"
    if len(parts) < 2 or parts[0] != "bot":
        return None
    return "bot.domain" if parts[1] == "crds" else f"bot.{parts[1]}"


def test_imports_between_packages_run_one_way() -> None:
    edges: dict[str, set[str]] = {}
    for path in _sources():
        src = _unit(_module(path))
        if src is None:
            continue
        for name in _runtime_imports(path):
            dst = _unit(name)
            if dst is not None and dst != src:
                edges.setdefault(src, set()).add(dst)
    cycles = []
    for a, targets in edges.items():
        for b in targets:
            seen, todo = set(), [b]
            while todo:
                here = todo.pop()
                if here == a:
                    cycles.append((a, b))
                    break
                if here not in seen:
                    seen.add(here)
                    todo.extend(edges.get(here, ()))
    assert sorted(cycles) == [], f"packages that import each other (directly or through others): {cycles}"


def test_the_service_folder_holds_no_loose_top_level_modules() -> None:
    loose = sorted(
        p.name for p in (ROOT / "bot").glob("*.py") if p.name not in {"__init__.py", "__main__.py"}
    )
    assert loose == [], "put service modules in bot/service/, checks in bot/prchecks/, git access in bot/git/"

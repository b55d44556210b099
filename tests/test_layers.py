"""Imports go one way (streams <- indexer <- workers <- vitrine_tools), checked on the source: every
module's AST is walked, imports inside functions and under ``TYPE_CHECKING`` included, so an import
that only runs later cannot slip past (checking ``sys.modules`` after import missed those)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: package -> top-level names (or dotted prefixes) its modules must never import.
FORBIDDEN = {
    "streams": ["indexer", "workers", "vitrine_tools", "faust"],
    "indexer": ["workers", "vitrine_tools", "faust", "kafka", "aiokafka", "streams.source", "streams.publisher",
                "streams.admin", "streams.query_client"],
    "workers": ["vitrine_tools"],
    "workers.vision": ["faust", "kafka", "aiokafka", "pymilvus", "minio", "aiohttp", "indexer", "streams",
                       "vitrine_tools", "workers.runtime", "workers.ingest", "workers.index", "workers.query",
                       "urllib", "requests", "socket"],
    "workers.runtime": ["workers.ingest", "workers.index", "workers.query"],
}


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out += [(node.lineno, f"{base}.{a.name}" if base else a.name) for a in node.names]
            out.append((node.lineno, base))
    return out


def modules_of(package: str) -> list[tuple[Path, str]]:
    root = REPO / package.replace(".", "/")
    return [(p, ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"))
            for p in sorted(root.rglob("*.py"))]


def _hits(name: str, banned: str) -> bool:
    return name == banned or name.startswith(banned + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package: str) -> None:
    bad = [f"{path.relative_to(REPO)}:{line} imports {name}"
           for path, module in modules_of(package)
           for line, name in imports_of(path, module)
           if any(_hits(name, b) for b in FORBIDDEN[package]) and not _hits(name, package)]
    assert not bad, "\n".join(bad)


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from vitrine_tools.devstack import stack\n    import faust\n")
    names = {n for _, n in imports_of(src, "workers.mod")}
    assert "vitrine_tools.devstack.stack" in names and "faust" in names


def test_production_code_does_not_import_the_test_fakes() -> None:
    bad = [f"{path.relative_to(REPO)}:{line}" for path, module in modules_of("workers")
           if module != "workers.vision.fakes"
           for line, name in imports_of(path, module) if _hits(name, "workers.vision.fakes")]
    assert not bad, "\n".join(bad)

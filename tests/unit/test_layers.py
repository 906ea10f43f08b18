"""Every `responder` package imports only from the layers below it (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "responder"

# lowest first; the table in docs/architecture.md, "Packages"
LAYERS: list[set[str]] = [
    {"settings", "security", "events", "yamlfiles", "text", "storage"},
    {"logs", "metrics", "audit", "kafka_clients"},
    {"incidents", "assets"},
    {"correlation"},
    {"actions"},
    {"playbooks"},
    {"commands", "evidence"},
    {"streams"},
    {"service"},
    {"api"},
    {"bootstrap"},
    {"cli"},
    {"__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def imported_packages(path: Path) -> set[str]:
    """The top-level `responder.X` names a module imports (TYPE_CHECKING and local imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "responder":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from responder import x: a package or an attribute of the root
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "responder" and len(parts) > 1:
                    found.add(parts[1])
    return found


def package_of(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    return relative.parts[0]


def modules() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if "migrations" not in p.relative_to(ROOT).parts[:2]]


def test_every_package_has_a_layer() -> None:
    """A new top-level module or package is placed in the layer table before it lands."""
    unplaced = {package_of(p) for p in modules()} - set(RANK) - {"__init__"}
    assert not unplaced, f"add {sorted(unplaced)} to LAYERS and to docs/architecture.md"


def test_imports_point_down() -> None:
    """No package imports a package of its own layer or of a layer above it."""
    wrong = []
    for path in modules():
        own = package_of(path)
        if own == "__init__":
            continue
        for target in imported_packages(path) - {own}:
            if target not in RANK:  # an attribute of the root package, e.g. __version__
                continue
            if RANK[target] >= RANK[own]:
                wrong.append(f"{path.relative_to(ROOT.parent)} imports responder.{target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_table_matches_the_architecture_document() -> None:
    """docs/architecture.md lists the same packages, in the same layers."""
    doc = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = [
        line.split("|")[1:3]
        for line in doc.splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    ]
    documented = {cell.strip().strip("`"): int(rank) for rank, cell in rows}
    expected = {name: rank for name, rank in RANK.items() if name in documented}
    assert documented == expected
    assert set(documented) >= set(RANK) - {"__main__"}

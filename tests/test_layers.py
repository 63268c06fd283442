"""The architecture in the tree: each part of the package imports only the parts below it, and nothing below the
command line imports it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "frugalthink"
# Bottom to top: a part may import itself and the parts before it in this list.
LAYERS = ["util", "config", "tasks", "organisms", "generation", "peers", "eval", "rl", "report", "studies",
          "integrations", "cli"]


def part_of(module: str) -> str | None:
    """``frugalthink.rl.trainer`` -> ``rl``; ``frugalthink.cli`` -> ``cli``; the package itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def imports_of(path: Path) -> list[str]:
    """Every frugalthink module ``path`` imports, at the top or inside a function."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("frugalthink."):
            out.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "frugalthink":
            out += [f"frugalthink.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("frugalthink.")]
    return out


def upward_imports(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        me = part_of("frugalthink." + ".".join(path.relative_to(root).with_suffix("").parts))
        for module in imports_of(path):
            them = part_of(module)
            if me and them and LAYERS.index(them) > LAYERS.index(me):
                bad.append(f"{path.relative_to(root)} ({me}) imports {module} ({them})")
    return bad


def test_every_module_belongs_to_a_part():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.stem not in LAYERS + ["__init__"]]
    assert loose == []
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert set(folders) <= set(LAYERS), set(folders) - set(LAYERS)


def test_imports_only_go_down():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The rule can fail: a low part that imports the command line is caught."""
    (tmp_path / "util").mkdir()
    (tmp_path / "util" / "x.py").write_text("def f():\n    from frugalthink.cli import main\n")
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl" / "y.py").write_text("from frugalthink.util import errors\n")
    assert upward_imports(tmp_path) == ["util/x.py (util) imports frugalthink.cli (cli)"]


@pytest.mark.parametrize("module", ["frugalthink.rl.trainer", "frugalthink.peers.drpo"])
def test_part_of(module):
    assert part_of(module) == module.split(".")[1]

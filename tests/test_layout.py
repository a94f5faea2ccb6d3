"""The package's folders are the pipeline's stages, and imports only run downstream: a module
never imports from a stage that comes after its own (so the data code can be read, tested and
reused without the models, the models without training, and so on)."""

from __future__ import annotations

import ast
from pathlib import Path

import heritage_damage_seg

PACKAGE = Path(heritage_damage_seg.__file__).parent
# Base modules at the package root (facts every stage shares) come first; cli and checks are
# entry points that wire the stages together and may import any of them.
STAGES = ["base", "data", "model", "training", "inference", "evaluation", "report"]
ENTRY_POINTS = {"cli", "checks"}


def stage_of(module: str) -> str | None:
    """``heritage_damage_seg.<stage>.<name>`` → stage; root modules are ``base``."""
    parts = module.split(".")
    if parts[0] != "heritage_damage_seg" or len(parts) < 2:
        return None
    if parts[1] in STAGES:
        return parts[1]
    return None if parts[1] in ENTRY_POINTS else "base"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # `from heritage_damage_seg.data import decode` imports the module data.decode
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if stage_of(name)}


def package_modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def test_every_module_lives_in_a_stage_or_is_a_named_root_module():
    roots = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert roots - ENTRY_POINTS == {"classes", "device", "io", "logs", "metrics", "seeds"}, (
        "a new module at the package root: put it in the stage folder it belongs to, or add it "
        "here if every stage shares it"
    )
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} >= set(
        STAGES[1:]
    )


def test_no_stage_imports_a_later_stage():
    upward = []
    for name, path in package_modules().items():
        own = stage_of(name)
        if own is None:
            continue
        for imported in imported_modules(path):
            if STAGES.index(stage_of(imported)) > STAGES.index(own):
                upward.append(f"{name} imports {imported}")
    assert not upward, (
        "imports against the stage order " + " < ".join(STAGES) + ":\n" + "\n".join(upward)
    )

"""The README is the front door and docs/ the manual: every page is reachable from the README,
every relative link lands on a file (and heading) that exists, the configuration page names
exactly the schema's keys with the schema's defaults, and the package map names every module."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

import heritage_damage_seg

README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
ARCHITECTURE = DOCS / "architecture.md"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"

# [text](target) and ![alt](target), outside code; the target ends at whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A row of a key table: the first cell is one key in backticks.
KEY_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*([^|]*?)\s*\|")


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def prose(path: Path) -> str:
    """The Markdown without fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path))


def is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("//")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def test_every_docs_page_is_linked_from_the_readme():
    assert pages(), "docs/ holds no page"
    linked = {
        (README.parent / target.split("#")[0]).resolve()
        for target in links(README)
        if is_relative(target) and target.split("#")[0]
    }
    missing = [page.name for page in pages() if page.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", [README, *pages()], ids=lambda p: p.name)
def test_every_relative_link_points_at_something_that_exists(page: Path):
    broken = []
    for target in links(page):
        if not is_relative(target):
            continue
        file_part, _, anchor = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(f"{target} (no file {path.relative_to(ROOT)})")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target} (no heading #{anchor} in {path.name})")
    assert not broken, f"{page.name}: broken links:\n" + "\n".join(broken)


def schema_keys() -> dict[str, str]:
    """Every key of the config schema as a dotted path → the default cell the page must show:
    the schema's default in backticks, ``required``, or ``—`` (optional, no default). An object
    whose entries are free names (``encoders``) contributes ``encoders.<name>.<key>``."""
    schema = yaml.safe_load(SCHEMA.read_text())
    definitions = schema.get("definitions", {})
    keys: dict[str, str] = {}

    def default_cell(node: dict, required: bool) -> str:
        if "default" in node:
            value = node["default"]
            return f"`{value if isinstance(value, str) else json.dumps(value)}`"
        return "required" if required else "—"

    def walk(node: dict, prefix: str) -> None:
        required = set(node.get("required", []))
        for name, sub in node.get("properties", {}).items():
            keys[prefix + name] = default_cell(sub, name in required)
            walk(sub, f"{prefix}{name}.")
        free = node.get("additionalProperties")
        if isinstance(free, dict) and free:
            if "$ref" in free:
                free = definitions[free["$ref"].rsplit("/", 1)[-1]]
            walk(free, f"{prefix}<name>.")

    walk(schema, "")
    return keys


def page_keys() -> dict[str, str]:
    """The configuration page's key tables: first cell a key in backticks → the second cell."""
    rows: dict[str, str] = {}
    for line in CONFIGURATION.read_text().splitlines():
        match = KEY_ROW.match(line)
        if match:
            key, default = match.groups()
            assert key not in rows, f"{key} is listed twice on {CONFIGURATION.name}"
            rows[key] = default
    return rows


def test_the_schema_walk_sees_nested_and_free_keys():
    keys = schema_keys()
    assert {"training", "training.gpus", "training.augmentation.flips"} <= keys.keys()
    assert "encoders.<name>.batch_size" in keys
    assert keys["training.gpus"] == "`1`" and keys["dataset.path"] == "required"


def test_the_configuration_page_names_exactly_the_schema_keys():
    schema, page = schema_keys(), page_keys()
    missing = sorted(schema.keys() - page.keys())
    unknown = sorted(page.keys() - schema.keys())
    assert not missing, f"schema keys missing from {CONFIGURATION.name}: {missing}"
    assert not unknown, f"keys on {CONFIGURATION.name} that the schema does not have: {unknown}"


def test_the_configuration_page_gives_the_schema_defaults():
    schema, page = schema_keys(), page_keys()
    wrong = [
        f"{key}: page {page[key]!r}, schema {schema[key]!r}"
        for key in sorted(schema.keys() & page.keys())
        if page[key] != schema[key]
    ]
    assert not wrong, (
        f"defaults on {CONFIGURATION.name} that differ from the schema:\n" + "\n".join(wrong)
    )


def test_the_package_map_names_every_module():
    """docs/architecture.md's table names every module of the package, by its path in backticks
    in the first column (``data/decode.py``), and no module that is gone."""
    package = Path(heritage_damage_seg.__file__).parent
    modules = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if path.name != "__init__.py"
    }
    listed = {
        match.group(1)
        for line in ARCHITECTURE.read_text().splitlines()
        if (match := KEY_ROW.match(line)) and match.group(1).endswith(".py")
    }
    missing, gone = sorted(modules - listed), sorted(listed - modules)
    assert not missing, f"modules missing from the package map in {ARCHITECTURE.name}: {missing}"
    assert not gone, f"the package map in {ARCHITECTURE.name} names modules that are gone: {gone}"

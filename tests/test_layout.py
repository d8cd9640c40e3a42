"""The layout section of docs/development.md names what the package holds, so the tree and its map agree."""

from __future__ import annotations

import re

from conftest import REPO


def layout_block() -> str:
    page = (REPO / "docs" / "development.md").read_text()
    section = page[page.index("## Project layout"):]
    return re.search(r"```\n(.*?)```", section, re.S).group(1)


def test_every_module_and_folder_of_the_package_is_on_the_map():
    block = layout_block()
    package = REPO / "audiosr"
    for path in sorted(package.iterdir()):
        if path.name.startswith("__") or path.suffix not in (".py", ""):
            continue
        assert f"audiosr/{path.name}" in block, f"{path.name} is missing from docs/development.md's layout"
    for folder in ("training", "inference", "evaluation", "models"):
        for module in sorted((package / folder).glob("*.py")):
            if module.name != "__init__.py":
                assert module.name in block, f"{folder}/{module.name} is missing from docs/development.md's layout"


def test_every_config_folder_is_on_the_map():
    block = layout_block()
    for folder in sorted(p for p in (REPO / "configs").iterdir() if p.is_dir()):
        assert f"configs/{folder.name}/" in block
        for config in folder.glob("*.yaml"):
            assert config.name in block, f"configs/{folder.name}/{config.name} is missing from docs/development.md's layout"

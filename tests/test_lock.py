"""requirements.lock and pyproject.toml agree: ranges in one, exact pins only in the other."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def locked() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in PIN.findall((REPO / "requirements.lock").read_text())}


def declared() -> list[Requirement]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project, build = pyproject["project"], pyproject["build-system"]["requires"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras, *build]]


def test_every_declared_requirement_is_locked_at_a_version_it_allows():
    pins = locked()
    assert {"torch", "torchaudio", "lightning", "pip", "setuptools"} <= pins.keys()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock has {name}=={pins[name]}, outside pyproject.toml's {requirement}: run `make lock`")


def test_only_the_lock_pins_exact_versions():
    for requirement in declared():
        assert not any(spec.operator in ("==", "===") for spec in requirement.specifier), requirement


def test_every_lock_entry_carries_a_hash():
    # Installed with --require-hashes: an entry without one would stop every install.
    text = (REPO / "requirements.lock").read_text()
    starts = [m.start() for m in PIN.finditer(text)] + [len(text)]
    for start, end in zip(starts, starts[1:]):
        assert "--hash=sha256:" in text[start:end], text[start:text.index("\n", start)]

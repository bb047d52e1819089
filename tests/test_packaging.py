"""The install is reproducible: constraints.txt pins every package the project asks for, within the
ranges pyproject.toml gives, and the environment the suite runs in holds exactly those versions."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    found = (re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line) for line in lines if line and not line.startswith("#"))
    return {canonicalize_name(m.group(1)): m.group(2) for m in found if m}


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    asked = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(r) for r in asked if not r.startswith("rag[")]


def test_every_requirement_is_pinned_inside_its_range_and_no_range_spans_a_major_series():
    pinned = pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in constraints.txt: run `make lock`"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} is outside {requirement}"
        upper = [Version(s.version) for s in requirement.specifier if s.operator == "<"]
        lower = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert upper and lower, f"{requirement} needs a lower and an upper bound"
        span = (upper[0].major - lower[0].major) if lower[0].major else (upper[0].minor - lower[0].minor)
        assert span <= 1 and (lower[0].major or upper[0].major == 0), f"{requirement} spans more than one series"


def test_the_environment_holds_the_pinned_versions():
    pinned = pins()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {name: (installed[name], version) for name, version in pinned.items()
              if name in installed and Version(installed[name]).public != Version(version).public}
    assert not differ, f"installed vs pinned: {differ}; run `make setup` (or `make lock` after a tested change)"

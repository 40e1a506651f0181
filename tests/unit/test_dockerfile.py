"""The Docker image carries every package `pip install .` installs (the engine itself is not on this machine)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_fairline_image_copies_every_package_pyproject_installs() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", (ROOT / "asterisk-docker" / "Dockerfile").read_text(), re.M))
    assert {p.rstrip("*") for p in packages} <= copied

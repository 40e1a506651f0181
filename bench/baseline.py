"""A checkout of an earlier revision with a venv of its own, so a benchmark can run old and new side by side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkout(rev: str) -> Path:
    """A worktree of `rev` under /tmp with its own .venv holding its `fairline`; made once, reused after."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True, capture_output=True,
                         text=True).stdout.strip()
    tree = Path(f"/tmp/fairline-baseline-{sha}")
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), sha], check=True,
                       capture_output=True)
    if not (tree / ".venv" / "bin" / "fairline").exists():
        print(f"baseline: installing {sha} into {tree}/.venv (about 30 s)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(tree / ".venv")], check=True)
        pip = [str(tree / ".venv/bin/pip"), "install", "-q", "--disable-pip-version-check"]
        if (tree / "requirements.lock").exists():
            subprocess.run([*pip, "-r", str(tree / "requirements.lock")], check=True)
        subprocess.run([*pip, "-e", str(tree)], check=True)
    return tree

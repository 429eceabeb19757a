"""Imports point downwards: the core, the CLI and the worker never import IPython or ipywidgets."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = [
    "jugnb",
    "jugnb.cli.app",
    "jugnb.cli.jugrun",
    "jugnb.notebook.export",
    "jugnb.session.kernel",
    "jugnb.session.loader",
    "jugnb.session.tasks",
    "jugnb.status.reader",
    "jugnb.status.render",
    "jugnb.backends.spec",
    "jugnb.notebook.lint",
    "jugnb.cli.jobs",
    "jugnb.launchers.submit",
    "jugnb.launchers.jobs",
]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_ipython(module: str) -> None:
    code = (
        f"import {module}, sys\n"
        "heavy = ('IPython', 'ipywidgets', 'ipykernel')\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(leaked))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""

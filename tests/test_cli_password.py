"""A redis password on ``jugnb execute``'s command line is warned about once; the alternative hides it.

Real password-protected redis-server, real ``jugnb execute`` and worker processes. Each task reports whether
the password reached its worker's environment.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backendutil import PASSWORD

CELL = """\
%%jugfile
import os
from jug import TaskGenerator

@TaskGenerator
def leaked(i):
    others = [v for k, v in os.environ.items() if k != "L12_SECRET"]
    seen = "JUGNB_REDIS_PASSWORD" in os.environ or any(SECRET in v for v in others)
    with open(f"leaked-{i}.txt", "w") as out:
        out.write(str(seen))
    return seen

SECRET = os.environ.get("L12_SECRET", "-")

flags = [leaked(i) for i in range(3)]
"""
WARNING = "jugnb: warning: the redis password in --jugdir is visible to every user of this host"


def test_a_password_in_argv_is_warned_about_once(
    redis_pw: Any, make_notebook: Callable[..., Path], project: Path,
    run: Callable[..., subprocess.CompletedProcess[str]],
) -> None:  # fmt: skip
    make_notebook([CELL], name="pw.ipynb")
    done = run(
        "jugnb", "execute", "pw.ipynb", "-j", "1", "--jugdir", redis_pw.url(db=3), "--will-cite", cwd=project
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(WARNING) == 1
    assert "JUGNB_REDIS_PASSWORD" in done.stderr and "0600" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_the_password_from_the_environment_never_reaches_a_worker(
    redis_pw: Any, make_notebook: Callable[..., Path], project: Path, jug_environ: dict[str, str]
) -> None:
    make_notebook([CELL], name="pw.ipynb")
    bare = redis_pw.url(db=3).replace(f":{PASSWORD}@", "")
    env = {**jug_environ, "JUGNB_REDIS_PASSWORD": PASSWORD, "L12_SECRET": PASSWORD[3:]}
    command = ["jugnb", "execute", "pw.ipynb", "-j", "2", "--jugdir", bare, "--will-cite"]
    done = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert WARNING not in done.stderr and "3 of 3 tasks done." in done.stdout
    assert [(project / f"leaked-{i}.txt").read_text() for i in range(3)] == ["False"] * 3

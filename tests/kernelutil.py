"""A real Jupyter kernel for end-to-end tests, driven the way JupyterLab drives it.

nbclient sends no cell ids, but JupyterLab, Notebook 7 and VS Code do (``metadata.cellId`` of each
``execute_request``); :meth:`Kernel.run` sends one when given, so tests cover both kinds of frontend.
"""

from __future__ import annotations

import os
import queue
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class CellResult:
    """What one execution produced."""

    stdout: str = ""
    stderr: str = ""
    data: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """stdout, stderr and text/plain outputs, joined."""
        plain = "".join(d.get("text/plain", "") + "\n" for d in self.data)
        return self.stdout + self.stderr + plain

    def ok(self) -> CellResult:
        """``self`` after asserting the cell raised nothing."""
        assert self.error is None, f"cell failed: {self.error['ename']}: {self.error['evalue']}\n{self.text}"
        return self


class Kernel:
    """A Python kernel started in ``cwd``; ``notebook`` is revealed as Jupyter Server does it."""

    def __init__(self, cwd: Path, notebook: str | None = None, startup_timeout: float = 60) -> None:
        env = dict(os.environ)
        env.pop("JPY_SESSION_NAME", None)
        if notebook is not None:
            env["JPY_SESSION_NAME"] = notebook
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=str(cwd), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=startup_timeout)

    def run(self, code: str, cell_id: str | None = None, timeout: float = 120) -> CellResult:
        """Execute ``code`` (sending ``cell_id`` like JupyterLab when given) and collect its output."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        metadata = {"cellId": cell_id} if cell_id is not None else {}
        msg = self.client.session.msg("execute_request", content, metadata=metadata)
        self.client.shell_channel.send(msg)
        return self._collect(msg["header"]["msg_id"], timeout)

    def _collect(self, msg_id: str, timeout: float) -> CellResult:
        result = CellResult()
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no output from the kernel for {timeout} s") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    result.stdout += content["text"]
                else:
                    result.stderr += content["text"]
            elif kind in ("execute_result", "display_data"):
                result.data.append(content["data"])
            elif kind == "error":
                result.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                return result

    def restart(self) -> None:
        """Restart the kernel (as the frontend's "Restart kernel" does)."""
        self.manager.restart_kernel(now=False)
        self.client.wait_for_ready(timeout=60)

    def shutdown(self) -> None:
        """Stop the kernel (if it still runs) and close every channel and socket."""
        self.client.stop_channels()
        if self.manager.is_alive():
            self.manager.shutdown_kernel(now=False)
        else:
            self.manager.cleanup_resources()
        self.manager.context.destroy(linger=0)

"""Display objects: HTML in notebooks, plain text in terminal IPython, from one rendering each."""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Rendered:
    """Something to show: ``text`` for terminals and logs, ``html`` for notebooks (same content)."""

    text: str
    html: str

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return self.html


def preformatted(text: str) -> Rendered:
    """Show ``text`` as is: monospace in notebooks too."""
    return Rendered(text, f"<pre>{html.escape(text)}</pre>")

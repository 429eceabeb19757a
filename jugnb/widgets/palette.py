"""The state colours of the panel and the browser, and their legend.

The colours are from Okabe and Ito's palette, which readers with any common colour-vision deficiency can
tell apart: complete is bluish green, active blue, ready sky blue (a state to expect, not a warning),
waiting grey and failed vermillion (the palette's red). They read on light and dark themes alike; text
around them keeps the theme's own colour. Every state also has a word and a mark, so colour is never the
only cue.

This module imports neither ipywidgets nor IPython.
"""

from __future__ import annotations

import html

__all__ = ["STATE_COLOURS", "STATE_TINTS", "legend_html"]

#: Solid colour of each state (bar segments, legend swatches).
STATE_COLOURS = {
    "complete": "#009E73",
    "active": "#0072B2",
    "ready": "#56B4E9",
    "waiting": "#9E9E9E",
    "failed": "#D55E00",
}
#: Translucent tint of each state, for row backgrounds that keep the theme's text colour readable.
STATE_TINTS = {
    "complete": "rgba(0, 158, 115, 0.16)",
    "active": "rgba(0, 114, 178, 0.20)",
    "ready": "rgba(86, 180, 233, 0.16)",
    "waiting": "rgba(158, 158, 158, 0.12)",
    "failed": "rgba(213, 94, 0, 0.28)",
    "lost": "rgba(204, 121, 167, 0.24)",  # tasks locked by a worker that is gone (browser rows only)
}


def legend_html(states: tuple[str, ...] = tuple(STATE_COLOURS)) -> str:
    """One line of swatches, each followed by its state's name (wraps on narrow screens).

    Returns
    -------
    str
        A ``<span class="jugnb-legend">`` fragment.
    """
    items = "".join(
        f'<span style="display:inline-block;white-space:nowrap;margin-right:1em">'
        f'<span style="display:inline-block;width:0.9em;height:0.9em;vertical-align:-0.1em;'
        f'background:{STATE_COLOURS[s]};margin-right:0.3em"></span>{html.escape(s)}</span>'
        for s in states
    )
    return f'<span class="jugnb-legend">{items}</span>'

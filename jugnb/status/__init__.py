"""Task states of a loaded graph, read from its store in bulk, and their text and HTML rendering.

:mod:`.reader` makes frozen snapshots; :mod:`.render` draws them (``jug status`` text, HTML). The widgets
draw the same snapshots. Store-specific reading lives in :mod:`jugnb.backends`.
"""

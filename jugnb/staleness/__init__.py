"""Stale results: which complete results were computed by code that has changed since.

:mod:`.codeindex` indexes the jugfile's source, :mod:`.fingerprint` hashes the code a task runs,
:mod:`.taskgraph` flattens a loaded graph, :mod:`.classify` labels each task, :mod:`.plan` is
``execute --dry-run``. Nothing here runs tasks or imports IPython.
"""

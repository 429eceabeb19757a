"""Everything jugnb does differently per store kind, one module per kind of jug store.

Lives here: parsing and redacting a jugdir spec, opening the store, bulk status reads, lock owners and
release, the change signal idle workers wait on, the task-record log and the code-fingerprint store.
Does not live here: anything that does not depend on the store kind. Nothing here imports from the rest of
jugnb except :mod:`jugnb.errors`.
"""

"""A jugfile loaded in this process: import through ``jug.init``, the kernel's session, task operations.

Lives here: loading a snapshot with jug's global state kept consistent, the kernel's ``%%jugfile``
fragments, selecting/invalidating/loading tasks, running tasks in the kernel. Not here: worker processes
(:mod:`jugnb.workers`) and store-specific code (:mod:`jugnb.backends`).
"""

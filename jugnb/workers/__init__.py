"""Worker processes: the pool that starts them, one process as the pool sees it, the loop inside it.

- :mod:`.pool`: :class:`~jugnb.workers.pool.WorkerPool`, started by ``%jug execute`` (in the kernel);
- :mod:`.process`: one worker process seen from outside (identity, signals, its end);
- :mod:`.loop`, :mod:`.env`, :mod:`.recorder`, :mod:`.heartbeat`: code that runs inside a worker
  (``python -m jugnb.workers.loop``);
- :mod:`.records`, :mod:`.locks`: task records and jug's locks, read by both sides.
"""

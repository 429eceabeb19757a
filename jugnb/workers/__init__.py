"""Worker processes: the pool that starts them, one process as the pool sees it, the loop inside it.

- :mod:`.pool`: :class:`~jugnb.workers.pool.WorkerPool`, started by ``%jug execute`` (in the kernel);
- :mod:`.process`, :mod:`.launch`, :mod:`.exits`: one worker process seen from outside (identity and
  signals, how it is started, what is settled when it ends);
- :mod:`.loop`, :mod:`.env`, :mod:`.recorder`, :mod:`.heartbeat`: code that runs inside a worker
  (``python -m jugnb.workers.loop``);
- :mod:`.locks`: who holds jug's locks, read by both sides (task records are in :mod:`jugnb.status.records`).
"""

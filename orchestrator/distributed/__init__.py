"""Distributed sweeps: one run spread over ``orch worker`` processes with procrastinate.

Pieces:

- ``app``: the procrastinate App on the PostgreSQL results database (the job queue lives in
  ``procrastinate_*`` tables beside the results; the schema is created on first use).
- ``shard``: what a shard job carries (devices, planned routes, the run's settings; never a
  secret) and its JSON form.
- ``tasks``: the shard task a worker runs: ``FleetRunner`` over the shard, reports stored with
  ``Store.save_reports`` (idempotent per run and device).
- ``coordinator``: ``run_distributed`` behind ``orch diagnose --workers``: shard, enqueue,
  wait, retry dead workers' shards, then network patterns once over the whole run.

How a killed worker's shard is retried. procrastinate records, for every job in ``doing``, the
id of the worker running it, and each worker refreshes its row in ``procrastinate_workers``
(a heartbeat) every ``--heartbeat`` seconds. A worker killed with SIGKILL, or on a machine
that lost power, stops refreshing it. While the coordinator waits it calls
``JobManager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s)`` every poll: that
returns the ``doing`` shards whose worker's heartbeat is older than the limit (or whose
worker row other workers already pruned as stalled), and ``JobManager.retry_job`` puts each
back to ``todo`` (attempts + 1), where any live worker picks it up. The shard then runs again
from its first device; devices the dead worker had already stored are simply stored again,
replacing their rows, so nothing is lost and nothing is duplicated. A worker stopped
gracefully (SIGTERM, ``systemctl stop``) finishes its shards or, after its shutdown timeout,
aborts them, and procrastinate's retry strategy re-queues them at once. A shard that raises
(database down, bad worker configuration) is retried by the same strategy, up to
``tasks.MAX_ATTEMPTS`` attempts in all.
"""

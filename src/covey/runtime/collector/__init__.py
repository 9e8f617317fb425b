"""The trace collector (issue 12): a process outside the cluster that receives the agents'
trace records, keeps them in SQLite and answers who is in the cluster, whether it is
stable, and what happened, in one timeline.

* :mod:`records` — the record and the ``traces`` batch, checked (the contract in
  docs/traces.md);
* :mod:`store` — SQLite: records, per-sender clock offsets, counters;
* :mod:`views` — members / stable / timeline, pure functions of stored records;
* :mod:`server` — the asyncio TCP server (sealed JSON lines);
* :mod:`daemon` — ``covey collector``: the fork into the background;
* :mod:`client` — a blocking client (the CLI, the tests, the benchmark).
"""

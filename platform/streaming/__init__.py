"""The stream consumer: events on a Redis Stream, aggregated into metrics, scored, stored, alerted.

- ``events``: the event format producers append (JSON fields ``key``, ``ts``, ``value``).
- ``aggregate``: events into per-key, per-interval metrics (count, mean, null fraction), closed
  on event time after an allowed lateness.
- ``store``: the warehouse tables (scores, detector states, alerts, consumer position) and the
  one transaction per closed batch of intervals.
- ``scoring``: one ``StreamDetector`` per (key, metric), and the alert throttling shared with
  the check-failure alerts (``data_platform.quality.alerting``).
- ``consumer``: the consumer-group process: lease, claim, read, commit, then acknowledge and send.
- ``producer``: synthetic events with injected incidents (a count drop, a mean shift, a null spike).

No Dagster here: the CLI passes the alert sinks in, and ``assets/streaming.py`` reads the tables.
"""

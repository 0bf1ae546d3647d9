"""The pipeline: the stages of a run called in order, with the state changes that make it safe to
kill and re-run. `daily.py` is the daily job (`run`); `fetching`, `sending` and `publishing` the stages it
calls around `digest.plan`'s decisions; `summary` what it reports.

The CLI, `digest serve`, the demo and the benchmarks call what is exported here.
"""

from digest.pipeline.daily import run
from digest.pipeline.fetching import (
    FetchReport,
    check_snapshot_date,
    fetch_all,
    fetch_day,
    new_on,
    run_date,
)
from digest.pipeline.publishing import publish
from digest.pipeline.sending import links_for, stop_on_signals
from digest.pipeline.summary import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_STALE, RunSummary

__all__ = [
    "EXIT_FAILED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_STALE",
    "FetchReport",
    "RunSummary",
    "check_snapshot_date",
    "fetch_all",
    "fetch_day",
    "links_for",
    "new_on",
    "publish",
    "run",
    "run_date",
    "stop_on_signals",
]

"""Python's cyclic garbage collector, set for a batch process that runs one stage and exits.

CPython frees almost everything by reference counting; the cyclic collector is only for reference cycles. Two of
its defaults cost a stage process seconds of its one Python core (measured in docs/performance.md):

- A young-generation pass every 700 net container allocations. dbt (its manifest, Jinja contexts, events) and
  great_expectations allocate millions of small objects: a scale-1 `retail-pipeline run` made about 2,600 passes
  and spent about 2 s in them. Every 50,000 allocations: 0.3-0.4 s, with the same peak memory (what a pass would
  free is cyclic garbage, and 50,000 small objects of it are a few MB).
- At exit, the interpreter collects whole generations again while it tears the modules down, over every object
  dbt, great_expectations and pyspark left: 1.4-1.7 s after `run` had finished its work. Frozen first (moved to
  a generation no collection visits), the same exit takes 0.1 s. Nothing of ours waits on a collection at exit:
  files are closed and renamed where they are written, and logging is flushed by its own exit handler.

Both are set by the entry points (the console script, the Glue job script) through :func:`run_batch`, not by
``main``, so that a test calling ``main`` in its own process keeps Python's defaults.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

# Young generation every 50,000 net allocations; the middle and old ones every 20 passes of the one below.
BATCH_THRESHOLDS = (50_000, 20, 20)


def run_batch(main: Callable[[], int]) -> int:
    """``main()`` with the collector set for a batch process; whatever it leaves is frozen on the way out, for the
    interpreter's exit (``main`` returning, or raising SystemExit as argparse does)."""
    gc.set_threshold(*BATCH_THRESHOLDS)
    try:
        return main()
    finally:
        gc.freeze()

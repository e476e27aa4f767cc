"""The garbage collector of a long-lived Airflow process: what it imported frozen, collections rarer.

Python's thresholds (700, 10, 10) suit short scripts. A triggerer's runner holds thousands of agents
at once and a scheduler holds every task instance of every running DAG run, so each older collection
walks everything they imported (hundreds of thousands of objects) and everything still alive, at
whatever line happens to allocate:

- triggerer: in bench/trigger_cost.py's two phases of 2,000 agents, 39 full collections took 10.7 s of
  CPU; with these settings 8 took 0.7 s. py-spy had found 2.5 s stalls of a runner's loop at one line
  during a 500-item fan-out;
- scheduler: over a deployment's start and shapes (a) and (d) of bench/scale.py, 19 full collections
  took 4.0 s of its CPU, and all of its collections 4.8 s; with these settings 5 took 0.9 s and all
  1.7 s (its CPU for (d) 9.7 -> 7.5-8.8 s over several runs, its PSS about 300 -> 243-262 MiB).

Freezing also keeps forked children (the trigger runner, LocalExecutor's workers) from touching, and
so copying, the pages they share with their parent. Airflow's LocalExecutor and DAG processor freeze
before they fork; its triggerer and scheduler processes do not. Module-level objects are never
collected anyway, and cycles are still collected, later: nothing is kept that would be freed.
"""

from __future__ import annotations

import gc

# Allocations between young collections, and young / middle collections between older ones.
GC_THRESHOLDS = (50_000, 20, 20)


def freeze_what_is_loaded() -> int:
    """Move every object alive now into the permanent generation and collect less often; returns how
    many objects are frozen. Call it after the imports, before the process forks or starts its loop."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return gc.get_freeze_count()

"""Benchmark grids (paper Tables 1-3) on one machine or a Ray cluster, with reports over seeds.

- :mod:`.grid` reads a grid file and expands it into resolved runs; :mod:`.graph` turns them
  into keyed jobs (poison -> train -> table); :mod:`.store` keeps every result once, by key;
- :mod:`.executors` run the jobs (``local`` processes or ``ray`` tasks); :mod:`.jobs` is what a
  worker does; :mod:`.progress` the one view of a running grid; :mod:`.cost` the dry-run estimate;
- :mod:`.collect`, :mod:`.tables`, :mod:`.render`, :mod:`.report` make Markdown, LaTeX, CSV and
  JSON tables with mean ± std and 95 % intervals over seeds, from run directories only;
- :mod:`.check` answers a data owner's question (``uebench check``) as an HTML/Markdown report
  (:mod:`.check_grid`, :mod:`.check_rows`, :mod:`.check_report`), with :mod:`.detectability`
  (how detectable each protected set is: ``uebench detect``).
"""

from uebench.bench.axes import Method
from uebench.bench.grid import Grid, expand, grid_from_dict, load_grid
from uebench.bench.run import run_grid, run_plan
from uebench.bench.store import Store, job_key

__all__ = ["Grid", "Method", "Store", "expand", "grid_from_dict", "job_key", "load_grid",
           "run_grid", "run_plan"]

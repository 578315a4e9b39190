"""The analysis step: fit scaling laws to a sweep's records (or any table), with
bootstrap intervals, and write fit.json, figures/ and report.md.

Modules, one concept each:

- ``table``: the input table from run records or a CSV (conventions, exclusions).
- ``laws``: the law forms in log space (Chinchilla, Kaplan, one-variable power laws).
- ``fit``: Huber objective, grid starts by variable projection, L-BFGS-B, bootstrap.
- ``frontier``: which points feed L(N), L(D) and the compute frontier L(C).
- ``compute_optimal``: N_opt, D_opt from the Chinchilla fit.
- ``isoflop``: IsoFLOP parabolas (Chinchilla approach 2).
- ``extrapolation``: hold out the largest runs and predict them.
- ``probes``: per-skill probes next to the loss (sigmoid sharpness, learning order,
  does the loss law predict the next skill).
- ``pipeline``: all of the above end to end; ``plots``, ``report``: the outputs.
- ``cli``: ``harness-fit``.
"""
from harness.analysis.errors import AnalysisWarning, TableError
from harness.analysis.pipeline import fit_results_dir, fit_table

__all__ = ["AnalysisWarning", "TableError", "fit_results_dir", "fit_table"]

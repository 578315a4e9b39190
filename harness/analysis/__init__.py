"""The analysis step: fit scaling laws to a sweep's records (or any table), with
bootstrap intervals, and write fit.json, figures/ and report.md.

Modules, one concept each:

- ``table``: the input table from run records or a CSV (conventions, exclusions, the
  known floor F).
- ``forms``: the law forms L = E + R (E fixed at F or free), their Huber fit in log
  loss and the residual bootstrap.
- ``selection``: three hold-outs, naive baselines, the joint law chosen by held-out
  error, the extrapolation check.
- ``frontier``: which points feed L(N), L(D) and the end-of-schedule frontier L(C).
- ``compute_optimal``: N_opt, D_opt on the selected surface.
- ``isoflop``: IsoFLOP parabolas (Chinchilla approach 2).
- ``data_constrained``: repeated data on Muennighoff et al.'s law (the value of a
  repeated token, the data-constrained allocation).
- ``probes``: per-skill probes next to the loss (sigmoid sharpness, learning order,
  does the loss law predict the next skill).
- ``pipeline``: all of the above end to end; ``plots``, ``report``: the outputs.
- ``result``: the :class:`Analysis` that figures and report sections read.
- ``cli``: ``harness-fit``; ``predict``: ``harness-predict`` (reads fit.json only).
"""
from harness.analysis.errors import AnalysisWarning, TableError

__all__ = ["AnalysisWarning", "TableError", "fit_results_dir", "fit_table"]


def __getattr__(name: str):
    # The pipeline (scipy.stats, the probes, the data sources) loads on first use, so
    # that harness-predict, which reads fit.json only, starts in a fraction of a second.
    if name in ("fit_results_dir", "fit_table"):
        from harness.analysis import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)

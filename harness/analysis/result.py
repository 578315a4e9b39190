"""What a finished analysis holds: everything a figure or a report section may read.

Figures (:mod:`harness.analysis.plots`) and report sections
(:mod:`harness.analysis.report`) are functions of an :class:`Analysis`, so adding one
means writing one function and appending it to a list.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.analysis.forms import Fit
from harness.analysis.table import Table


@dataclass
class Analysis:
    table: Table
    fits: dict[str, Fit | None]  # primary fits by law name; None when skipped
    law_points: dict[str, dict]  # by law name: {"description", "ids", "x", "loss"} of the rows it used
    frontier: dict  # the end-of-schedule compute frontier: arrays C, loss, run (row index)
    isoflop: dict | None
    compute_optimal: dict | None
    extrapolation: dict | None
    selected: str | None  # the joint law chosen by held-out error
    laws_json: dict  # the fit.json "laws" block (unrounded)
    warnings: list[str]
    settings: dict
    replicate_noise: dict | None = None  # run-to-run spread from runs repeating an (N, D) (pipeline.replicate_noise)
    conventions: dict | None = None  # the selected law's exponents under other counting conventions
    probes: dict | None = None  # the per-skill probe analysis (harness.analysis.probes), None without probes
    probe_data: object = None  # its ProbeData, for the figures
    data_constrained: dict | None = None  # repeated data: harness.analysis.data_constrained.summarize
    skills: dict | None | bool = None  # two-step skill prediction (harness.analysis.skills): None without probes, False when not asked for
    fit: dict = field(default_factory=dict)  # the fit.json content
    figures: list[str] = field(default_factory=list)  # paths relative to the output folder

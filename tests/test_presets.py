"""Every sweep preset in configs/sweep/ composes, validates and plans, and `sweep=auto`
picks the preset the README says. A broken preset fails here, not hours into a sweep."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.cli import CONFIG_DIR, resolve_sweep_name
from harness.sweep import plan

PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "sweep").glob("*.yaml"))


def test_the_readme_lists_every_preset():
    readme = (Path(CONFIG_DIR).parent / "README.md").read_text()
    head = "Presets live in `configs/sweep/`:"
    assert head in readme, "the README's list of presets moved: update this test"
    listed = readme.split(head, 1)[1].split("; add your own", 1)[0]
    assert sorted(n.strip(" `\n") for n in listed.replace(",", " ").split()) == sorted(set(PRESETS) - {"single"})


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_composes_and_plans(name, tmp_path):
    """The whole grid is composed and validated (plan raises on the first bad point),
    every point is a distinct run, and plan.json agrees with what was planned."""
    info = plan(CONFIG_DIR, [f"sweep={name}", f"results_dir={tmp_path}"])
    assert info["sweep"] == name  # the preset's sweep.name is its file name: results/<name>/
    sizes = [len(v) for v in info["axes"].values()]
    assert info["total"] == math.prod(sizes) == len(info["configs"]) == len(set(info["run_ids"]))
    assert info["already_done"] == 0
    saved = json.loads((tmp_path / name / "plan.json").read_text())
    assert saved["run_ids"] == info["run_ids"] and len(saved["flops"]) == info["total"]
    assert all(f > 0 for f in saved["flops"])
    if name != "single":
        # README: "The sweep presets resume by default."
        assert all(c.train.resume for c in info["configs"]), f"{name} does not set train.resume: true"
        assert info["total"] > 1


@pytest.mark.parametrize("cuda, preset", [(False, "cpu"), (True, "gpu")])
def test_sweep_auto_picks_gpu_with_cuda_else_cpu(monkeypatch, tmp_path, cuda, preset):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_sweep_name([]) == [f"sweep={preset}"]  # auto is the default
    axis = "ladder=w16,w32" if preset == "cpu" else "model.width=16,32"
    args = resolve_sweep_name(["sweep=auto", axis, f"results_dir={tmp_path}"])
    assert args == [f"sweep={preset}", axis, f"results_dir={tmp_path}"]
    assert resolve_sweep_name(["sweep=tiny"]) == ["sweep=tiny"]  # a named preset is left alone
    info = plan(CONFIG_DIR, args)
    key, values = axis.split("=")
    assert info["sweep"] == preset and info["axes"][key] == values.split(",")

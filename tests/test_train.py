import json
import re

import pytest
import torch

from harness import records
from harness.model import GPT
from harness.schedule import lr_multiplier, warmup_steps
from harness.train import train


def test_tiny_run_learns_and_writes_consistent_record(tiny_cfg):
    cfg = tiny_cfg()
    rec = train(cfg)
    assert rec["status"] == "ok"
    path = records.ResultsLayout(cfg.results_dir, "single").record(rec["run_id"])
    on_disk = json.loads(path.read_text())
    assert on_disk["final_val_loss"] == rec["final_val_loss"]
    assert rec["curve"][-1]["val_loss"] < rec["curve"][0]["val_loss"] - 0.3
    assert rec["params_total"] == rec["params_embedding"] + rec["params_nonembedding"]
    assert rec["flops_6nd"] == 6 * rec["params_nonembedding"] * rec["tokens"]
    assert rec["flops"] == rec["flops_per_token"] * rec["tokens"]
    assert rec["tokens"] == rec["steps"] * 16 * 32 >= cfg.data.tokens
    assert rec["entropy_floor"] is not None and rec["final_val_loss"] > rec["entropy_floor"]
    assert rec["mfu"] is None and rec["device"] == "cpu"
    assert 0 < rec["first_step_s"] < rec["wall_time_s"]
    assert [p["tokens"] for p in rec["curve"]] == sorted(p["tokens"] for p in rec["curve"])


def test_records_hold_only_declared_fields(tiny_cfg):
    """A record field is added in one place, records.RunRecord: the loop writes nothing else."""
    rec = train(tiny_cfg(**{"train.compile": False, "train.checkpoint_every": 7}))
    assert set(rec) <= set(records.RunRecord.__annotations__)
    assert all(set(p) <= set(records.CurvePoint.__annotations__) for p in rec["curve"])
    assert records.CSV_FIELDS == tuple(records.csv_row(rec))[: len(records.CSV_FIELDS)]


def test_same_config_same_loss(tiny_cfg, tmp_path):
    a = train(tiny_cfg())
    b = train(tiny_cfg(results_dir=str(tmp_path / "other")))
    assert a["run_id"] == b["run_id"]
    assert a["final_val_loss"] == b["final_val_loss"]
    assert a["curve"] == b["curve"]


def test_run_id_ignores_non_semantic_keys(tiny_cfg):
    from harness.config import to_container

    a = records.run_id(to_container(tiny_cfg()))
    assert a == records.run_id(to_container(tiny_cfg(**{"wandb.mode": "offline", "train.progress": True})))
    assert a != records.run_id(to_container(tiny_cfg(**{"train.seed": 1})))


def test_huge_lr_diverges(tiny_cfg):
    rec = train(tiny_cfg(**{"train.lr": 50.0, "train.grad_clip": 0.0, "train.warmup": 0}))
    assert rec["status"] == "diverged"
    assert re.fullmatch(r"training loss \S+ at step \d+ \(first \S+\)", rec["error"]), rec["error"]


def _report_loss_from_step_2(monkeypatch, factor):
    """From the 2nd training step on, the loss the loop sees is ``factor`` x the first
    step's (gradients unchanged), so only the divergence check decides the run."""
    original = GPT.forward
    seen = {"n": 0, "first": None}

    def forward(self, idx, targets=None):
        out = original(self, idx, targets)
        if targets is None or not self.training:
            return out
        logits, loss = out
        seen["n"] += 1
        if seen["n"] == 1:
            seen["first"] = loss.item()
            return logits, loss
        return logits, loss - loss.detach() + factor * seen["first"]

    monkeypatch.setattr(GPT, "forward", forward)
    return seen


@pytest.mark.parametrize("above", [True, False])
def test_divergence_threshold_is_diverge_factor_times_the_first_loss(tiny_cfg, monkeypatch, above):
    """diverge_factor=3: a finite loss 0.1% above 3x the first step's stops the run at
    step 2; 0.1% below it trains to the end."""
    seen = _report_loss_from_step_2(monkeypatch, 3.0 * (1.001 if above else 0.999))
    cfg = tiny_cfg(**{"data.tokens": 16 * 32 * 6, "train.eval_every": 1, "data.probe_records": 0,
                      "train.diverge_factor": 3.0})
    rec = train(cfg)
    if above:
        assert rec["status"] == "diverged"
        assert rec["error"] == f"training loss {3.003 * seen['first']:.4g} at step 2 (first {seen['first']:.4g})"
    else:
        assert rec["status"] == "ok" and rec["steps"] == 6 == seen["n"]
        assert rec["final_train_loss"] == pytest.approx(2.997 * seen["first"], rel=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_schedules_train_with_the_scheduled_lr_at_every_step(tiny_cfg, monkeypatch, schedule):
    """The lr AdamW steps with is peak x lr_multiplier(step) at each of the 40 steps, in
    every parameter group: warmup 0.05 is 2 steps, from lr/2; cosine ends at 0.1 x lr,
    wsd's 1 - sqrt cooldown over the last 8 steps at 0."""
    lrs = []
    original = torch.optim.AdamW.step

    def step(self, *a, **kw):
        lrs.append([g["lr"] for g in self.param_groups])
        return original(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    rec = train(tiny_cfg(**{"train.schedule": schedule, "train.lr": 1e-2, "train.warmup": 0.05,
                            "train.cooldown": 0.2, "train.min_lr_ratio": 0.1}))
    assert rec["status"] == "ok" and rec["steps"] == 40 and rec["lr"] == 1e-2
    assert len(lrs) == 40
    for k, groups in enumerate(lrs):
        want = 1e-2 * lr_multiplier(k, 40, schedule, warmup_steps(0.05, 40), 0.2, 0.1)
        assert groups == pytest.approx([want] * len(groups), rel=1e-12), f"step {k}"
    assert lrs[0][0] == pytest.approx(5e-3) and lrs[1][0] == pytest.approx(1e-2)  # warmup: 2 steps
    last = {"cosine": 1e-3, "constant": 1e-2, "wsd": 0.0}[schedule]
    assert lrs[-1][0] == pytest.approx(last, abs=1e-15)
    if schedule == "wsd":  # stable until the cooldown's first step (32), then 1 - sqrt(x)
        assert lrs[31][0] == 1e-2 and lrs[32][0] == pytest.approx(1e-2 * (1 - (1 / 8) ** 0.5))


def test_isoflop_budget_sets_tokens(tiny_cfg):
    rec = train(tiny_cfg(**{"data.flop_budget": 5e9}))
    assert rec["status"] == "ok"
    assert abs(rec["flops_6nd"] - 5e9) / 5e9 < 0.05

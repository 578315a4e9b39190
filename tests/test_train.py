import json

import pytest

from harness import records
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
    assert "loss" in rec["error"]


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_schedules_train(tiny_cfg, schedule):
    rec = train(tiny_cfg(**{"train.schedule": schedule}))
    assert rec["status"] == "ok"


def test_isoflop_budget_sets_tokens(tiny_cfg):
    rec = train(tiny_cfg(**{"data.flop_budget": 5e9}))
    assert rec["status"] == "ok"
    assert abs(rec["flops_6nd"] - 5e9) / 5e9 < 0.05

"""WSD data ladders: a run branched from a sibling's stable phase equals an independent run."""
from harness.train import train


def wsd(tiny_cfg, results_dir, tokens, **kw):
    return tiny_cfg(**{"train.schedule": "wsd", "train.warmup": 5, "train.cooldown": 0.2,
                       "data.tokens": tokens, "results_dir": str(results_dir),
                       "train.branch_tokens": [16 * 32 * 30, 16 * 32 * 60], **kw})


def test_branched_run_matches_independent_run_and_saves_compute(tiny_cfg, tmp_path):
    small, big = 16 * 32 * 30, 16 * 32 * 60
    alone = train(wsd(tiny_cfg, tmp_path / "alone", small))
    assert "branched_from_step" not in alone

    trunk = train(wsd(tiny_cfg, tmp_path / "ladder", big))
    branch = train(wsd(tiny_cfg, tmp_path / "ladder", small))
    assert trunk["status"] == branch["status"] == "ok"
    assert branch["branched_from_step"] == 30 - round(0.2 * 30)
    assert branch["tokens_shared"] == 24 * 16 * 32
    assert branch["run_id"] == alone["run_id"]  # the same run, trained for 20% of the cost
    assert branch["final_val_loss"] == alone["final_val_loss"]
    assert branch["final_train_loss"] == alone["final_train_loss"]


def test_probes_are_recorded_at_every_eval(tiny_cfg):
    rec = train(tiny_cfg())
    probes = rec["probes"]
    assert probes["kind"] == "facts"
    assert len(probes["final"]) == len(probes["buckets"]) == len(probes["mass"])
    assert all(len(p["probes"]) == len(probes["buckets"]) for p in rec["curve"])
    assert 0 <= probes["time_fraction"] < 0.5
    acc = [b["accuracy"] for b in probes["final"] if b["n"]]
    assert all(0 <= a <= 1 for a in acc)

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
    """Every curve point holds each bucket's metrics over the whole probe set: the counts
    of the probe set itself, an exact match that is a whole number of hits, and, on the
    most frequent facts, a model that learns (exact match and logprob rise over the run)."""
    import math

    from harness.data import build_data

    cfg = tiny_cfg()
    rec = train(cfg)
    probes = rec["probes"]
    assert probes["kind"] == "facts"
    assert len(probes["final"]) == len(probes["buckets"]) == len(probes["mass"])
    probe = build_data(cfg, cfg.data.tokens).probe
    counts = [int((probe.bucket == b).sum()) for b in range(len(probe.names))]
    assert probes["buckets"] == probe.names and min(counts) > 0
    assert len(rec["curve"]) == 10  # eval_every=0: ten evaluations
    for point in rec["curve"]:
        assert [b["bucket"] for b in point["probes"]] == probe.names
        assert [b["n"] for b in point["probes"]] == counts
        for b in point["probes"]:
            hits = b["accuracy"] * b["n"]  # per-batch means in float32, pooled: 1e-4 slack
            assert abs(hits - round(hits)) < 1e-4 and 0 <= hits <= b["n"]
            assert math.isfinite(b["loss"]) and b["loss"] > 0 and b["logprob"] < 0
    assert probes["final"] == rec["curve"][-1]["probes"]
    first, last = rec["curve"][0]["probes"][0], rec["curve"][-1]["probes"][0]
    assert last["accuracy"] > first["accuracy"] and last["logprob"] > first["logprob"]
    assert 0 <= probes["time_fraction"] < 0.5

"""Packed training (the PackedEngine) against a lone run (the SingleEngine), one loop.

Tolerance: a packed run does run k's arithmetic with torch's own AdamW and clipping,
but vmap turns each matmul into a batched one, so sums are reordered and a few values
round differently (one fp32 ulp, ~1e-7 relative), then grow a little over the steps.
We require every curve point (train and held-out loss) to agree within 1e-5 relative.
"""
import json
import math

import pytest
import torch

from harness import records
from harness.train import pack_key, train, train_packed

RTOL = 1e-5


def assert_same_run(packed: dict, single: dict) -> None:
    assert packed["status"] == single["status"] == "ok"
    assert packed["run_id"] == single["run_id"]  # the sweep's resume skips it either way
    for key in ("tokens", "steps", "lr", "params_total", "params_nonembedding", "flops_6nd", "flops"):
        assert packed[key] == single[key], key
    assert [p["step"] for p in packed["curve"]] == [p["step"] for p in single["curve"]]
    for p, s in zip(packed["curve"], single["curve"]):
        assert p["tokens"] == s["tokens"] and p["flops"] == s["flops"]
        assert math.isclose(p["train_loss"], s["train_loss"], rel_tol=RTOL), (p, s)
        assert math.isclose(p["val_loss"], s["val_loss"], rel_tol=RTOL), (p, s)
    assert math.isclose(packed["final_val_loss"], single["final_val_loss"], rel_tol=RTOL)
    assert math.isclose(packed["final_train_loss"], single["final_train_loss"], rel_tol=RTOL)


@pytest.mark.parametrize("model", [
    {},  # SP, tied embeddings
    {"model.parametrization": "mup", "model.base_width": 16, "model.tie_embeddings": False},
])
def test_packed_runs_match_one_by_one(tiny_cfg, model):
    """Three runs that differ in init seed, lr, schedule, clipping, data seed and
    token budget (the third stops after 24 of 40 steps) train as one pack."""
    cfgs = [
        tiny_cfg(**model, **{"train.seed": 0}),
        tiny_cfg(**model, **{"train.seed": 1, "train.lr": 3e-3, "train.schedule": "wsd",
                             "train.grad_clip": 0.05}),
        tiny_cfg(**model, **{"train.seed": 2, "train.lr": 2e-2, "train.grad_clip": 0.0,
                             "data.seed": 1, "data.tokens": 32 * 16 * 24}),
    ]
    packed = train_packed(cfgs)
    single = [train(c) for c in cfgs]
    assert [r["steps"] for r in single] == [40, 40, 24]
    for p, s in zip(packed, single):
        assert_same_run(p, s)
        assert p["packed"]["size"] == 3


def test_finished_run_leaves_the_pack_unchanged(tiny_cfg):
    """A run that ends early (6 of 12 steps) is dropped from the stack; both runs
    still equal their lone runs, and the short one's record is written at its end."""
    cfgs = [tiny_cfg(**{"data.tokens": 32 * 16 * 12}),
            tiny_cfg(**{"train.seed": 1, "data.tokens": 32 * 16 * 6})]
    packed = train_packed(cfgs)
    assert packed[1]["curve"][-1]["step"] == 6 and packed[1]["wall_time_s"] < packed[0]["wall_time_s"]
    for p, c in zip(packed, cfgs):
        assert_same_run(p, train(c))


def test_diverging_run_does_not_disturb_the_others(tiny_cfg):
    cfgs = [tiny_cfg(**{"data.tokens": 32 * 16 * 20}),
            tiny_cfg(**{"data.tokens": 32 * 16 * 20, "train.lr": 50.0, "train.grad_clip": 0.0,
                        "train.warmup": 0})]
    packed = train_packed(cfgs)
    single = [train(c) for c in cfgs]
    assert_same_run(packed[0], single[0])
    assert packed[1]["status"] == single[1]["status"] == "diverged"
    assert packed[1]["error"] == single[1]["error"]  # detected at the same step, same message


def test_records_are_written_like_train(tiny_cfg):
    cfgs = [tiny_cfg(**{"data.tokens": 32 * 16 * 8}),
            tiny_cfg(**{"data.tokens": 32 * 16 * 8, "train.seed": 3})]
    recs = train_packed(cfgs)
    for cfg, rec in zip(cfgs, recs):
        on_disk = records.read_record(records.ResultsLayout(cfg.results_dir, cfg.sweep.name).record(rec["run_id"]))
        assert on_disk["status"] == "ok" and on_disk["final_val_loss"] == rec["final_val_loss"]
        assert on_disk["tokens_per_s"] > 0 and on_disk["mfu"] is None and on_disk["device"] == "cpu"
        assert on_disk["packed"] == {"size": 2, "with": [r["run_id"] for r in recs if r is not rec]}


def test_only_one_shape_per_pack(tiny_cfg):
    a, b = tiny_cfg(), tiny_cfg(**{"model.width": 64})
    assert pack_key(a) != pack_key(b)
    assert pack_key(a) == pack_key(tiny_cfg(**{"train.lr": 1.0, "train.seed": 5, "data.tokens": 10**6}))
    with pytest.raises(ValueError, match="packing needs equal"):
        train_packed([a, b])


def test_packed_records_pass_the_checks_of_lone_records(tiny_cfg):
    """Same fields as a lone run's record (plus ``packed``), probes included, and the
    same record checks; the probe results agree with the lone run's."""
    cfgs = [tiny_cfg(**{"data.tokens": 32 * 16 * 10}), tiny_cfg(**{"data.tokens": 32 * 16 * 10, "train.seed": 1})]
    packed = train_packed(cfgs)
    for cfg, p in zip(cfgs, packed):
        on_disk = records.read_record(records.ResultsLayout(cfg.results_dir, cfg.sweep.name).record(p["run_id"]))
        assert on_disk == records.check_record(json.loads(json.dumps(p)))
        lone = train(cfg)
        assert set(p) - {"packed"} == set(lone)
        assert p["torch_threads"] == lone["torch_threads"] == 1 and p["first_step_s"] > 0
        assert p["probes"]["buckets"] == lone["probes"]["buckets"] and p["probes"]["kind"] == "facts"
        for pb, lb in zip(p["probes"]["final"], lone["probes"]["final"]):
            assert pb["n"] == lb["n"] and math.isclose(pb["loss"], lb["loss"], rel_tol=RTOL)
        assert all(len(pt["probes"]) == len(p["probes"]["buckets"]) for pt in p["curve"])


def test_packed_wsd_ladder_saves_branch_states_a_sibling_starts_from(tiny_cfg, tmp_path):
    """train.branch_tokens in a pack: the long run saves its state at the short run's
    cooldown start; a later short run starts there and equals an independent one."""
    small, big = 16 * 32 * 30, 16 * 32 * 60
    kw = {"train.schedule": "wsd", "train.warmup": 5, "train.branch_tokens": [small, big]}
    alone = train(tiny_cfg(**kw, **{"data.tokens": small, "results_dir": str(tmp_path / "alone")}))
    ladder = str(tmp_path / "ladder")
    trunk, _ = train_packed([tiny_cfg(**kw, **{"data.tokens": big, "results_dir": ladder}),
                             tiny_cfg(**kw, **{"data.tokens": big, "train.seed": 1, "results_dir": ladder})])
    assert trunk["status"] == "ok"
    branch, = train_packed([tiny_cfg(**kw, **{"data.tokens": small, "results_dir": ladder})])
    assert branch["branched_from_step"] == 24 and branch["run_id"] == alone["run_id"]
    assert math.isclose(branch["final_val_loss"], alone["final_val_loss"], rel_tol=RTOL)


def test_interrupted_pack_checkpoints_and_resumes(tiny_cfg, tmp_path):
    """Every run of an interrupted pack is checkpointed and recorded ``interrupted``;
    train.resume=true finishes each where an uninterrupted pack would have."""
    import os
    import signal

    from harness.train import train_runs

    kw = {"train.eval_every": 4, "results_dir": str(tmp_path / "p")}
    cfgs = [tiny_cfg(**kw), tiny_cfg(**kw, **{"train.seed": 1})]
    ref = train_packed([tiny_cfg(**{**kw, "results_dir": str(tmp_path / "ref")}),
                        tiny_cfg(**{**kw, "results_dir": str(tmp_path / "ref"), "train.seed": 1})])
    sent = []

    def interrupt(point):  # once: a second signal would stop at once, without checkpoints
        if point["step"] == 8 and not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))

    with pytest.raises(KeyboardInterrupt):
        train_runs(cfgs, on_eval=interrupt, packed=True)
    for c, r in zip(cfgs, ref):
        rec = records.read_record(records.ResultsLayout.of(c).record(r["run_id"]))
        assert rec["status"] == "interrupted" and rec["checkpoint_step"] == 9
    resumed = train_packed([tiny_cfg(**kw, **{"train.resume": True}),
                            tiny_cfg(**kw, **{"train.resume": True, "train.seed": 1})])
    for res, r in zip(resumed, ref):
        assert res["resumed_from_step"] == 9 and res["final_val_loss"] == r["final_val_loss"]

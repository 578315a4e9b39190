"""Packed training (harness.packed) against the one-run loop (harness.train).

Tolerance: a packed run does run k's arithmetic, but vmap turns each matmul into a
batched one and the optimizer computes lr·scale in fp32, so sums are reordered and a
few values round differently (one fp32 ulp, ~1e-7 relative), then grow a little over
the steps. We require every curve point (train and held-out loss) to agree within
1e-5 relative; on this CPU the largest difference seen is 5e-7 absolute (about 3e-7
relative) and final held-out losses agree to the bit.
"""
import math

import pytest
import torch

from harness import records
from harness.packed import PackedTrainer, clip_per_run_, pack_key, train_packed
from harness.train import train

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
    packed = train_packed(cfgs, write=False)
    single = [train(c) for c in cfgs]
    assert [r["steps"] for r in single] == [40, 40, 24]
    for p, s in zip(packed, single):
        assert_same_run(p, s)
        assert p["packed"]["size"] == 3


def test_clipping_is_per_run():
    """Each row is clipped as clip_grad_norm_ clips one model's gradients; 0 is off."""
    torch.manual_seed(0)
    g = torch.randn(4, 50) * torch.tensor([[0.1], [1.0], [10.0], [10.0]])
    max_norm = torch.tensor([1.0, 1.0, 1.0, 0.0])
    norms = clip_per_run_(clipped := g.clone(), max_norm)
    for k in range(4):
        pieces = [t.clone().requires_grad_() for t in g[k].split([20, 30])]  # two "parameters"
        for t, part in zip(pieces, g[k].split([20, 30])):
            t.grad = part.clone()
        if max_norm[k] > 0:
            ref_norm = torch.nn.utils.clip_grad_norm_(pieces, max_norm[k].item())
            assert torch.allclose(norms[k], ref_norm, rtol=1e-6)
        assert torch.allclose(clipped[k], torch.cat([t.grad for t in pieces]), rtol=1e-6, atol=0)
    assert torch.equal(clipped[0], g[0]) and torch.equal(clipped[3], g[3])  # under the limit; off
    assert torch.linalg.vector_norm(clipped[2]) == pytest.approx(1.0, rel=1e-5)


def test_finished_run_stops_changing_and_leaves_the_stack(tiny_cfg):
    cfgs = [tiny_cfg(**{"data.tokens": 32 * 16 * 12}),
            tiny_cfg(**{"train.seed": 1, "data.tokens": 32 * 16 * 6})]
    trainer = PackedTrainer(cfgs)
    for _ in range(6):
        trainer.step()
    assert trainer.active == [0]  # run 1 is done after its 6 steps
    frozen = trainer.params_of(1)
    before = trainer.params_of(0)
    trainer.step()
    assert all(torch.equal(frozen[n], t) for n, t in trainer.params_of(1).items())
    assert not all(torch.equal(before[n], t) for n, t in trainer.params_of(0).items())
    assert trainer.runs[1].record["status"] == "ok"
    assert trainer.runs[1].record["curve"][-1]["step"] == 6


def test_diverging_run_does_not_disturb_the_others(tiny_cfg):
    cfgs = [tiny_cfg(**{"data.tokens": 32 * 16 * 20}),
            tiny_cfg(**{"data.tokens": 32 * 16 * 20, "train.lr": 50.0, "train.grad_clip": 0.0,
                        "train.warmup": 0})]
    packed = train_packed(cfgs, write=False)
    single = [train(c) for c in cfgs]
    assert_same_run(packed[0], single[0])
    assert packed[1]["status"] == single[1]["status"] == "diverged"
    assert packed[1]["error"] == single[1]["error"]  # detected at the same step, same message


def test_records_are_written_like_train(tiny_cfg):
    cfgs = [tiny_cfg(**{"data.tokens": 32 * 16 * 8}),
            tiny_cfg(**{"data.tokens": 32 * 16 * 8, "train.seed": 3})]
    recs = train_packed(cfgs)
    for cfg, rec in zip(cfgs, recs):
        on_disk = records.read_record(records.record_path(cfg.results_dir, cfg.sweep.name, rec["run_id"]))
        assert on_disk["status"] == "ok" and on_disk["final_val_loss"] == rec["final_val_loss"]
        assert on_disk["tokens_per_s"] > 0 and on_disk["mfu"] is None and on_disk["device"] == "cpu"
        assert on_disk["packed"] == {"size": 2, "with": [r["run_id"] for r in recs if r is not rec]}


def test_only_one_shape_per_pack(tiny_cfg):
    a, b = tiny_cfg(), tiny_cfg(**{"model.width": 64})
    assert pack_key(a) != pack_key(b)
    assert pack_key(a) == pack_key(tiny_cfg(**{"train.lr": 1.0, "train.seed": 5, "data.tokens": 10**6}))
    with pytest.raises(ValueError, match="packing needs equal"):
        PackedTrainer([a, b])

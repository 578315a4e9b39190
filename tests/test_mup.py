"""μP: the scalings themselves, a coordinate check, and a μP run that trains."""
import math

import numpy as np
import pytest
import torch

from harness.coord_check import CoordCheckConfig, coord_check, layer_names, width_slope
from harness.model import INIT_STD, GPT, GPTConfig
from harness.train import train


def _cfg(**kw):
    base = dict(vocab=64, width=128, depth=2, heads=8, context=16, parametrization="mup", base_width=32)
    return GPTConfig(**{**base, **kw})


def _lr_of(groups):
    return {id(p): g["lr"] for g in groups for p in g["params"]}


def test_mup_scalings_at_width_mult_4():
    torch.manual_seed(0)
    model = GPT(_cfg())
    m = 4.0
    assert model.config.width_mult == m
    assert model.readout_mult == 1 / m
    assert all(b.attn_scale == 1 / 16 for b in model.blocks)  # 1/d_head, d_head = 128/8
    lr = _lr_of(model.param_groups(1e-2, weight_decay=0.1))
    hidden = {id(p) for p in model.hidden_matrices()}
    for p in model.parameters():
        assert lr[id(p)] == pytest.approx(1e-2 / m if id(p) in hidden else 1e-2)
    # hidden init std sigma/sqrt(m) (residual projections another 1/sqrt(2L)); embeddings sigma
    b = model.blocks[0]
    assert b.qkv.weight.std().item() == pytest.approx(INIT_STD / math.sqrt(m), rel=0.05)
    assert b.proj.weight.std().item() == pytest.approx(INIT_STD / math.sqrt(m) / 2, rel=0.05)
    assert model.wte.weight.std().item() == pytest.approx(INIT_STD, rel=0.05)


def test_sp_ignores_base_width_and_mup_at_base_width_is_sp_up_to_attention():
    def build(**kw):
        torch.manual_seed(0)
        return GPT(_cfg(width=32, heads=2, **kw))

    sp, sp_other_base, mup = build(parametrization="sp"), build(parametrization="sp", base_width=7), build()
    for a, b, c in zip(sp.parameters(), sp_other_base.parameters(), mup.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert sp.readout_mult == mup.readout_mult == 1.0
    assert all(b.attn_scale is None for b in sp.blocks)  # SDPA's default 1/sqrt(d_head)
    assert [g["lr"] for g in sp.param_groups(1e-2, 0.1)] == [g["lr"] for g in mup.param_groups(1e-2, 0.1)]
    x = torch.randint(0, 64, (2, 16))
    torch.testing.assert_close(sp(x), sp_other_base(x), rtol=0, atol=0)


@pytest.fixture(scope="module")
def coords():
    """Activation change after 1..3 Adam steps at lr 1e-2, widths 32..256 (about 3 s)."""
    torch.set_num_threads(1)
    c = dict(widths=(32, 64, 128, 256), base_width=32, depth=2, steps=3, lr=1e-2, seeds=(0, 1))
    return {p: coord_check(CoordCheckConfig(parametrization=p, **c)) for p in ("mup", "sp")}


def _mean_slope(rows, layer, quantity="change"):
    """log-log slope of the layer's activation change against width, averaged over steps 1..3."""
    return float(np.mean([width_slope(rows, layer, s, quantity) for s in (1, 2, 3)]))


@pytest.mark.parametrize("layer", ["resid.1", "logits"])
def test_coord_check_flat_under_mup_growing_under_sp(coords, layer):
    mup, sp = _mean_slope(coords["mup"], layer), _mean_slope(coords["sp"], layer)
    assert abs(mup) < 0.3, f"mup {layer} change grows with width: slope {mup:.2f}"
    # SP with Adam: each update moves every entry by ~lr, so ΔW·x grows ~linearly in width
    assert sp > {"resid.1": 0.8, "logits": 0.4}[layer], f"sp {layer} slope {sp:.2f}"


def test_coord_check_every_hidden_layer(coords):
    for layer in layer_names(2)[1:]:  # the embedding's change is O(1) under both (Adam, lr unchanged)
        mup, sp = _mean_slope(coords["mup"], layer), _mean_slope(coords["sp"], layer)
        assert abs(mup) < 0.35 and sp > mup + 0.5, f"{layer}: mup slope {mup:.2f}, sp slope {sp:.2f}"
        assert abs(_mean_slope(coords["mup"], layer, "size")) < 0.35


def test_mup_run_at_width_128_with_base_32_trains(tiny_cfg):
    cfg = tiny_cfg(**{"model.width": 128, "model.heads": 8, "model.parametrization": "mup",
                      "model.base_width": 32})
    record = train(cfg)
    assert record["status"] == "ok", record.get("error")
    assert record["config"]["model"]["parametrization"] == "mup"
    first, last = record["curve"][0]["val_loss"], record["final_val_loss"]
    assert last < first < math.log(32) + 0.1
    assert last < math.log(32) - 0.3  # well below the uniform guess over the 32-token vocab


def test_committed_lr_transfer_records_show_mup_transfer():
    """results/lr_transfer (harness-sweep sweep=lr_transfer): under μP the best lr moves at
    most one grid step (x2) across >= 4 widths; under SP it moves more."""
    from pathlib import Path

    from harness.records import load_records

    folder = Path(__file__).resolve().parent.parent / "results" / "lr_transfer"
    if not (folder / "runs").is_dir():
        pytest.skip("results/lr_transfer is not committed")
    best: dict = {}
    records = [r for r in load_records(folder)[0] if not isinstance(r["config"]["train"]["lr"], str)]
    grid = sorted({float(r["config"]["train"]["lr"]) for r in records})
    for r in records:
        if r["status"] != "ok":
            continue
        key = (r["config"]["model"]["parametrization"], r["config"]["model"]["width"])
        if key not in best or r["final_val_loss"] < best[key][1]:
            best[key] = (grid.index(float(r["config"]["train"]["lr"])), r["final_val_loss"])
    steps = {p: [s for (q, _), (s, _) in sorted(best.items()) if q == p] for p in ("mup", "sp")}
    assert len(steps["mup"]) >= 4 and len(steps["sp"]) >= 4
    assert max(steps["mup"]) - min(steps["mup"]) <= 1, steps
    assert max(steps["sp"]) - min(steps["sp"]) >= 2, steps

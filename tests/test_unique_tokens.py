"""``data.unique_tokens`` (U_D): a training pool of the source's first U_D tokens,
repeated in epochs; U_D = D is the fresh run bit for bit, the held-out set stays
apart, and bad values stop before any compute with one line and no record."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from harness import records
from harness.config import ConfigError, to_container
from harness.data import build_data
from harness.data.text import split_sizes
from harness.model import planned_tokens
from harness.train import train
from harness.validation import validate
from test_text_data import make_cfg as text_cfg, make_corpus

D = 32 * 16 * 40  # tests/conftest.py TINY: 40 steps of 16 x 32 tokens


def _rows_seen(data, steps: int) -> Counter:
    """How often each window (as bytes of its input + last target) appears in steps' batches."""
    seen: Counter = Counter()
    for s in range(steps):
        x, y = data.train.batch(s)
        for row in torch.cat([x, y[:, -1:]], dim=1).numpy():
            seen[row.tobytes()] += 1
    return seen


@pytest.mark.parametrize("source", ["zipf_facts", "markov"])
def test_unique_tokens_equal_to_D_trains_the_fresh_run_bitwise(tiny_cfg, source):
    fresh = train(tiny_cfg(**{"data.source": source}))
    pooled = train(tiny_cfg(**{"data.source": source, "data.unique_tokens": D}))
    assert pooled["run_id"] != fresh["run_id"]  # a set U_D is part of the run id
    assert pooled["curve"] == fresh["curve"] and pooled["final_train_loss"] == fresh["final_train_loss"]
    assert (fresh["unique_tokens"], fresh["epochs"]) == (None, 1.0)
    assert (pooled["unique_tokens"], pooled["epochs"]) == (D, 1.0)


@pytest.mark.parametrize("source", ["zipf_facts", "markov"])
def test_four_epochs_see_every_pool_window_exactly_four_times(tiny_cfg, source):
    """U_D = D/4 (10 batches): the pool is the fresh stream's first 160 windows, each
    seen exactly once per epoch (4 times in the run's 40 steps), epoch 0 in order and
    later epochs reordered; the held-out windows are the fresh run's, none in the pool."""
    cfg = tiny_cfg(**{"data.source": source, "data.unique_tokens": D // 4})
    data = build_data(cfg, planned_tokens(cfg))
    fresh = build_data(tiny_cfg(**{"data.source": source}), D)
    assert torch.equal(data.train.rows, fresh.train.rows[:160])
    seen = _rows_seen(data, 40)
    pool = {r.tobytes() for r in data.train.rows.long().numpy()}
    assert set(seen) == pool and set(seen.values()) == {4}
    assert data.info["epochs"] == 4.0 and data.info["unique_tokens"] == D // 4
    assert [data.train.batch(s)[0].tolist() for s in range(10)] == [fresh.train.batch(s)[0].tolist() for s in range(10)]
    assert data.train.batch(10)[0].tolist() != data.train.batch(0)[0].tolist()
    assert torch.equal(data.val, fresh.val)
    assert not pool & {r.tobytes() for r in data.val.numpy()}


def test_a_four_epoch_run_is_reproducible_and_records_its_epochs(tiny_cfg, tmp_path):
    a = train(tiny_cfg(**{"data.unique_tokens": D // 4}))
    b = train(tiny_cfg(**{"data.unique_tokens": D // 4, "results_dir": str(tmp_path / "other")}))
    assert a["curve"] == b["curve"] and a["run_id"] == b["run_id"]
    assert (a["unique_tokens"], a["epochs"]) == (D // 4, 4.0)
    assert records.read_record(records.ResultsLayout(a["config"]["results_dir"], "single").record(a["run_id"]))[
        "epochs"] == 4.0


def test_a_pool_rounds_up_to_whole_batches(tiny_cfg):
    """U_D = 1000 targets is 32 windows of context 32, rounded up to 2 batches of 16: the
    record's unique_tokens is what the pool holds (1024), epochs = D / 1024 = 20."""
    cfg = tiny_cfg(**{"data.unique_tokens": 1000})
    data = build_data(cfg, planned_tokens(cfg))
    assert data.info["unique_tokens"] == 1024 and data.info["epochs"] == 20.0


def test_null_unique_tokens_is_left_out_of_the_run_id(tiny_cfg):
    """Records from before the key existed keep their ids: a null U_D hashes as absent."""
    config = to_container(tiny_cfg())
    old = {**config, "data": {k: v for k, v in config["data"].items() if k != "unique_tokens"}}
    assert records.run_id(config) == records.run_id(old)
    assert records.run_id(to_container(tiny_cfg(**{"data.unique_tokens": D}))) != records.run_id(config)


# ----- text -----

def test_text_pool_is_the_head_of_the_training_part(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt")
    full = build_data(text_cfg(tmp_path, corpus), 4000)
    n_train = full.info["train_tokens_available"]
    same = build_data(text_cfg(tmp_path, corpus, unique_tokens=n_train), 4000)
    for s in range(20):  # U_D = the whole training part is the U_D-null stream
        assert torch.equal(same.train.batch(s)[0], full.train.batch(s)[0])
    u = 500
    pooled = build_data(text_cfg(tmp_path, corpus, unique_tokens=u), 4000)
    assert pooled.info["epochs"] == 4000 / u and pooled.info["unique_tokens"] == u
    assert torch.equal(pooled.val, full.val)  # the held-out tail, after the training part
    tokens = np.asarray(full.train.tokens)
    for s in range(50):
        x, y = pooled.train.batch(s)
        starts = [int(np.flatnonzero((np.lib.stride_tricks.sliding_window_view(tokens[:u], 17) ==
                                      np.r_[x[i].numpy(), y[i, -1:].numpy()]).all(1))[0]) for i in range(len(x))]
        assert max(starts) + 17 <= u  # every window lies inside the pool


# ----- bad input -----

@pytest.mark.parametrize("u, message", [
    (0, "data.unique_tokens=0 must be a positive token count (or null: every token fresh)"),
    (-5, "data.unique_tokens=-5 must be a positive token count (or null: every token fresh)"),
    (D + 1, f"data.unique_tokens={D + 1} is above data.tokens={D}: a run cannot see more unique tokens"),
])
def test_bad_unique_tokens_stop_in_validation(tiny_cfg, u, message):
    with pytest.raises(ConfigError) as e:
        validate(tiny_cfg(**{"data.unique_tokens": u}))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    validate(tiny_cfg(**{"data.unique_tokens": D}))  # the edge passes


def test_unique_tokens_above_the_corpus_names_both_numbers(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt")
    probe = build_data(text_cfg(tmp_path, corpus), 1000)
    n_train = probe.info["train_tokens_available"]
    assert (n_train, probe.info["val_tokens"]) == split_sizes(probe.info["corpus_tokens"], 0.1)
    cfg = text_cfg(tmp_path, corpus, unique_tokens=n_train + 1, tokens=10 * n_train)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    msg = str(e.value)
    assert msg.startswith(f"data.unique_tokens={n_train + 1} is above the {n_train} training tokens data.path=")
    assert "\n" not in msg
    validate(text_cfg(tmp_path, corpus, unique_tokens=n_train, tokens=10 * n_train))
    with pytest.raises(ConfigError, match="data.unique_tokens=10 is too few for model.context=16"):
        validate(text_cfg(tmp_path, corpus, unique_tokens=10))


@pytest.mark.parametrize("override", ["data.unique_tokens=0", "data.unique_tokens=20481"])
def test_cli_refuses_bad_unique_tokens_without_a_record(tmp_path, override):
    out = subprocess.run(
        [sys.executable, "-c", "from harness.cli import train_main; train_main()",
         "data.tokens=20480", override, f"results_dir={tmp_path}", "wandb.mode=disabled"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"harness-train: error: {override}"), out.stderr
    assert not list(tmp_path.rglob("*.json"))


# ----- resume and WSD branching across epochs -----

def test_resume_inside_a_later_epoch_matches_the_uninterrupted_run(tiny_cfg, tmp_path):
    """10-batch epochs, interrupted after step 12 (inside epoch 1): the resumed run
    draws the same permuted batches and ends on the same bits."""
    kw = {"data.unique_tokens": D // 4, "train.eval_every": 4, "train.checkpoint_every": 3}
    ref = train(tiny_cfg(**kw, results_dir=str(tmp_path / "ref")))

    def interrupt(point):
        if point["step"] >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(**kw), on_eval=interrupt)
    resumed = train(tiny_cfg(**kw, **{"train.resume": True}))
    assert resumed["resumed_from_step"] == 9 and resumed["epochs"] == 4.0
    assert resumed["curve"] == ref["curve"] and resumed["final_train_loss"] == ref["final_train_loss"]


def test_wsd_branch_from_a_longer_repeated_run_matches_an_independent_run(tiny_cfg, tmp_path):
    """Siblings of D = 30 and 60 batches over one 10-batch pool (3 and 6 epochs): the
    stable phase is the same batches in both, so the short run branched from the long
    one's state is the short run trained alone."""
    small, big = 16 * 32 * 30, 16 * 32 * 60

    def wsd(folder, tokens):
        return tiny_cfg(**{"train.schedule": "wsd", "train.warmup": 5, "train.cooldown": 0.2,
                           "data.tokens": tokens, "data.unique_tokens": 16 * 32 * 10,
                           "train.branch_tokens": [small, big], "results_dir": str(tmp_path / folder)})

    alone = train(wsd("alone", small))
    train(wsd("ladder", big))
    branch = train(wsd("ladder", small))
    assert branch["branched_from_step"] == 24 and branch["run_id"] == alone["run_id"]
    assert branch["epochs"] == alone["epochs"] == 3.0
    assert branch["final_val_loss"] == alone["final_val_loss"]
    assert branch["final_train_loss"] == alone["final_train_loss"]


def test_a_text_run_records_its_pool_and_epochs(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt")
    kw = {"model.width": 16, "model.depth": 1, "model.heads": 2, "train.progress": False,
          "train.threads": 1, "wandb.mode": "disabled"}
    cfg = text_cfg(tmp_path, corpus, unique_tokens=500, tokens=4000)
    for k, v in kw.items():
        cfg[k.split(".")[0]][k.split(".")[1]] = v
    validate(cfg)
    rec = train(cfg)
    assert rec["status"] == "ok" and rec["tokens"] == 32 * 8 * 16
    assert (rec["unique_tokens"], rec["epochs"]) == (500, 4096 / 500)
    fresh = text_cfg(tmp_path, corpus, tokens=4000)
    for k, v in kw.items():
        fresh[k.split(".")[0]][k.split(".")[1]] = v
    rec = train(fresh)
    # the corpus is finite: with U_D null the pool is the whole training part
    n_train = rec["data_info"]["train_tokens_available"]
    assert rec["unique_tokens"] == n_train and rec["epochs"] == 4096 / n_train


def test_an_isoflop_run_checks_unique_tokens_against_its_own_D(tiny_cfg):
    cfg = tiny_cfg(**{"data.flop_budget": 1e10})
    d = planned_tokens(cfg)
    validate(tiny_cfg(**{"data.flop_budget": 1e10, "data.unique_tokens": d}))
    with pytest.raises(ConfigError) as e:
        validate(tiny_cfg(**{"data.flop_budget": 1e10, "data.unique_tokens": d + 1}))
    assert str(e.value).startswith(f"data.unique_tokens={d + 1} is above the run's D={d} (data.flop_budget / 6N)")


# ----- data.epochs: U_D = D / epochs -----

def test_epochs_is_the_pool_of_D_over_epochs_bitwise(tiny_cfg):
    """data.epochs=4 builds the pool of data.unique_tokens=D/4 and trains the same bits;
    each is its own run id (as data.flop_budget and data.tokens are)."""
    by_e = train(tiny_cfg(**{"data.epochs": 4}))
    by_u = train(tiny_cfg(**{"data.unique_tokens": D // 4}))
    assert (by_e["unique_tokens"], by_e["epochs"]) == (D // 4, 4.0)
    assert by_e["curve"] == by_u["curve"] and by_e["run_id"] != by_u["run_id"]


def test_epochs_runs_of_different_D_are_not_one_wsd_family():
    """Their pools D / epochs differ, so a WSD ladder must not branch one from another."""
    from harness.records import family_id
    from harness.config import make_config

    def cfg(**kw):
        return to_container(make_config(**kw))

    assert family_id(cfg(**{"data.tokens": 1000})) == family_id(cfg(**{"data.tokens": 2000}))
    assert family_id(cfg(**{"data.tokens": 1000, "data.unique_tokens": 500})) == \
        family_id(cfg(**{"data.tokens": 2000, "data.unique_tokens": 500}))
    assert family_id(cfg(**{"data.tokens": 1000, "data.epochs": 2})) != \
        family_id(cfg(**{"data.tokens": 2000, "data.epochs": 2}))


@pytest.mark.parametrize("kw, message", [
    ({"data.epochs": 0.5}, "data.epochs=0.5 must be a number >= 1"),
    ({"data.epochs": 0}, "data.epochs=0.0 must be a number >= 1"),
    ({"data.epochs": float("nan")}, "data.epochs=nan must be a number >= 1"),
    ({"data.epochs": 2, "data.unique_tokens": 100}, "data.unique_tokens=100 and data.epochs=2.0: give one of the two"),
])
def test_bad_epochs_stop_in_validation(tiny_cfg, kw, message):
    with pytest.raises(ConfigError) as e:
        validate(tiny_cfg(**kw))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    validate(tiny_cfg(**{"data.epochs": 1}))


def test_epochs_on_text_checks_the_pool_it_gives(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt")
    with pytest.raises(ConfigError) as e:
        validate(text_cfg(tmp_path, corpus, epochs=1000, tokens=4000))
    assert str(e.value).startswith("data.epochs=1000.0 gives data.unique_tokens=4, which is too few for model.context=16")
    n_train = build_data(text_cfg(tmp_path, corpus), 1000).info["train_tokens_available"]
    with pytest.raises(ConfigError, match=f"data.epochs=1.0 gives data.unique_tokens={10 * n_train}, which is above"):
        validate(text_cfg(tmp_path, corpus, epochs=1.0, tokens=10 * n_train))

import math

import numpy as np
import pytest
import torch

from harness.data import build_data
from harness.data.synthetic import MarkovChain, ZipfFacts


def brute_force_record_entropy(lang: ZipfFacts) -> float:
    """H(k1, k2, v) by enumerating every record's probability."""
    V, h = lang.vocab, 0.0
    for r in range(lang.n_facts):
        for v in range(V):
            pv = lang.noise / V + (1 - lang.noise) * (v == lang.values[r])
            p = lang.p[r] * pv
            if p > 0:
                h -= p * math.log(p)
    return h


def test_zipf_facts_entropy_matches_brute_force():
    lang = ZipfFacts(vocab=6, n_facts=20, zipf_exponent=1.2, fact_noise=0.3, seed=3)
    e = lang.entropies()
    assert e["k1"] + e["k2"] + e["v"] == pytest.approx(brute_force_record_entropy(lang), rel=1e-12)
    # marginal of k1, counted by brute force
    counts = {}
    for r in range(lang.n_facts):
        counts[lang.k1[r]] = counts.get(lang.k1[r], 0) + lang.p[r]
    assert e["k1"] == pytest.approx(-sum(p * math.log(p) for p in counts.values()))


def test_zipf_facts_floor_matches_empirical_bayes_loss():
    """Monte Carlo: the Bayes predictor's loss on sampled windows approaches the floor."""
    lang = ZipfFacts(vocab=8, n_facts=40, zipf_exponent=1.5, fact_noise=0.2, seed=0)
    ctx = 10
    rows = lang.windows(np.random.default_rng(1), 20000, ctx)
    p_pair = {(lang.k1[r], lang.k2[r]): (lang.p[r], lang.values[r]) for r in range(lang.n_facts)}
    p_k1 = np.bincount(lang.k1, weights=lang.p, minlength=8)
    nll = 0.0
    for pos in range(1, ctx + 1):
        slot = pos % 3
        tgt, prev = rows[:, pos], rows[:, pos - 1]
        if slot == 0:
            nll += -np.log(p_k1[tgt]).mean()
        elif slot == 1:
            p = np.array([p_pair[(a, b)][0] for a, b in zip(prev, tgt)]) / p_k1[prev]
            nll += -np.log(p).mean()
        else:
            k1 = rows[:, pos - 2]
            val = np.array([p_pair[(a, b)][1] for a, b in zip(k1, prev)])
            p = lang.noise / 8 + (1 - lang.noise) * (tgt == val)
            nll += -np.log(p).mean()
    assert nll / ctx == pytest.approx(lang.floor(ctx), abs=0.02)


def test_markov_entropy_rate_matches_empirical():
    chain = MarkovChain(vocab=12, branching=4, seed=2)
    rows = chain.windows(np.random.default_rng(0), 4000, 50)
    nll = -np.log(chain.P[rows[:, :-1], rows[:, 1:]]).mean()
    assert nll == pytest.approx(chain.entropy_rate(), abs=0.02)


def test_windows_start_at_record_boundaries():
    lang = ZipfFacts(vocab=16, n_facts=50, zipf_exponent=1.5, fact_noise=0.0, seed=0)
    rows = lang.windows(np.random.default_rng(0), 100, 30)
    pairs = set(zip(lang.k1.tolist(), lang.k2.tolist()))
    values = {(a, b): v for a, b, v in zip(lang.k1.tolist(), lang.k2.tolist(), lang.values.tolist())}
    for row in rows:
        for i in range(0, 30, 3):
            assert (row[i], row[i + 1]) in pairs
            assert row[i + 2] == values[(row[i], row[i + 1])]


def test_train_and_val_splits_are_disjoint_streams_and_ladders_nest(tiny_cfg):
    small = build_data(tiny_cfg(), 16 * 32 * 300)
    big = build_data(tiny_cfg(), 16 * 32 * 600)
    assert torch.equal(big.train.rows[: small.train.rows.shape[0]], small.train.rows)
    train_rows = {tuple(r) for r in big.train.rows.tolist()}
    overlap = sum(tuple(r) in train_rows for r in small.val.tolist())
    assert overlap == 0
    x, y = big.train.batch(3)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_the_last_generated_data_is_reused_not_regenerated(tiny_cfg, monkeypatch):
    """Runs of one D at several widths, one after another, generate the data once."""
    import harness.data as data_mod

    calls = []
    build = data_mod.SOURCES["zipf_facts"].build
    monkeypatch.setattr(data_mod.SOURCES["zipf_facts"], "build",
                        staticmethod(lambda cfg, n: calls.append(n) or build(cfg, n)))
    monkeypatch.setattr(data_mod, "_last", {})
    n = 16 * 32 * 50
    a = build_data(tiny_cfg(**{"model.width": 32}), n)
    b = build_data(tiny_cfg(**{"model.width": 64, "model.heads": 4}), n)  # width is not a data key
    assert b is a and calls == [n]
    c = build_data(tiny_cfg(), 2 * n)
    d = build_data(tiny_cfg(**{"data.seed": 1}), 2 * n)
    assert c is not a and d is not c and calls == [n, 2 * n, 2 * n]
    assert len(data_mod._last) == 1  # only the latest is held

"""Probes: bucketing and accuracy checked against brute-force counts on tiny sources."""
import numpy as np
import pytest
import torch

from harness.data.synthetic import ZipfFacts
from harness.data.probe_sets import band_of, facts_probe, probe_metrics, rank_bands, token_probe


def test_rank_bands_cover_every_rank_once():
    for n in (1, 3, 4, 17, 128, 16384):
        bands = rank_bands(n)
        ranks = [r for lo, hi in bands for r in range(lo, hi)]
        assert ranks == list(range(1, n + 1))
        idx = band_of(np.arange(1, n + 1), bands)
        for r, b in zip(range(1, n + 1), idx):
            lo, hi = bands[b]
            assert lo <= r < hi


def test_probe_metrics_match_brute_force():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 5, generator=g)
    targets = torch.randint(0, 5, (3, 7), generator=g)
    answer = torch.randint(0, 5, (3, 7), generator=g)
    bucket = torch.randint(-1, 2, (3, 7), generator=g)
    got = probe_metrics(logits, targets, bucket, answer, 2)
    for b in range(2):
        nll, hits, lp, n = 0.0, 0, 0.0, 0
        for i in range(3):
            for t in range(7):
                if bucket[i, t] != b:
                    continue
                p = torch.softmax(logits[i, t], -1)
                nll -= float(torch.log(p[targets[i, t]]))
                lp += float(torch.log(p[answer[i, t]]))
                hits += int(int(p.argmax()) == int(answer[i, t]))
                n += 1
        assert got[b]["n"] == n
        assert got[b]["loss"] == pytest.approx(nll / n, rel=1e-5)
        assert got[b]["logprob"] == pytest.approx(lp / n, rel=1e-5)
        assert got[b]["accuracy"] == pytest.approx(hits / n)


def test_facts_probe_buckets_value_positions_by_fact_rank():
    lang = ZipfFacts(vocab=16, n_facts=100, zipf_exponent=1.5, fact_noise=0.0, seed=1)
    probe = facts_probe(lang, context=11, records_per_bucket=30, seed=0)
    bands = rank_bands(100)
    rank_of = {(int(a), int(b)): r + 1 for r, (a, b) in enumerate(zip(lang.k1, lang.k2))}
    w, bucket, answer = probe.windows.numpy(), probe.bucket.numpy(), probe.answer.numpy()
    counts = np.zeros(len(bands), int)
    for i in range(w.shape[0]):
        for p in range(1, 12):
            if p % 3 != 2:
                assert bucket[i, p - 1] == -1
                continue
            r = rank_of[(w[i, p - 2], w[i, p - 1])]
            lo, hi = bands[bucket[i, p - 1]]
            assert lo <= r < hi
            assert answer[i, p - 1] == lang.values[r - 1] == w[i, p]  # no noise: target is the truth
            counts[bucket[i, p - 1]] += 1
    assert counts.min() >= 25  # roughly equal records per bucket
    assert sum(probe.mass) == pytest.approx(1.0)


def test_perfect_model_scores_full_accuracy_on_facts():
    lang = ZipfFacts(vocab=16, n_facts=60, zipf_exponent=1.5, fact_noise=0.0, seed=2)
    probe = facts_probe(lang, context=8, records_per_bucket=20, seed=0)
    logits = torch.nn.functional.one_hot(probe.answer, 16).float() * 20
    res = probe_metrics(logits, probe.windows[:, 1:], probe.bucket, probe.answer, len(probe.names))
    assert all(r["accuracy"] == 1.0 for r in res if r["n"])


def test_token_probe_ranks_by_training_frequency():
    train = np.array([0] * 50 + [1] * 30 + [2] * 10 + [3] * 5 + [4])
    windows = torch.tensor([[0, 1, 2, 3, 4, 0]])
    probe = token_probe(windows, train, vocab=6)
    # ranks: 0->1, 1->2, 2->3, 3->4, 4->5, 5->6 ; bands [1,4), [4,7)
    assert probe.bucket.tolist() == [[0, 0, 1, 1, 0]]
    assert probe.mass[0] == pytest.approx(90 / 96)

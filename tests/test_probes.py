"""Probes: bucketing and accuracy checked against brute-force counts on tiny sources."""
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from harness.data.synthetic import ZipfFacts
from harness.data.probe_sets import band_of, evaluate_probes, facts_probe, probe_metrics, rank_bands, token_probe


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


def _fact_lookup_logits(lang: ZipfFacts, inputs: torch.Tensor, wrong_ranks: set = frozenset()) -> torch.Tensor:
    """Logits of the Bayes model built from the language's own facts: after keys (k1, k2)
    of a known fact it puts its mass on that fact's value (on the next token instead for
    the facts of ``wrong_ranks``); at every other position it is uniform."""
    value = {(int(a), int(b)): (int(v), r + 1) for r, (a, b, v) in enumerate(zip(lang.k1, lang.k2, lang.values))}
    logits = torch.zeros(*inputs.shape, lang.vocab)
    for i in range(inputs.shape[0]):
        for t in range(1, inputs.shape[1]):
            hit = value.get((int(inputs[i, t - 1]), int(inputs[i, t])))
            if hit is not None and t % 3 == 1:  # input t is k2 of a record: the target is its value
                v, rank = hit
                logits[i, t, (v + 1) % lang.vocab if rank in wrong_ranks else v] = 20.0
    return logits


class _FactModel(torch.nn.Module):
    """A stand-in for the GPT in evaluate_probes: logits from the fact table."""

    def __init__(self, lang, wrong_ranks=frozenset()):
        super().__init__()
        self.lang, self.wrong_ranks = lang, wrong_ranks

    def forward(self, idx):
        return _fact_lookup_logits(self.lang, idx, self.wrong_ranks)


@pytest.mark.parametrize("batch_size", [3, 1000])  # pooled over many batches, and one
def test_a_model_that_knows_the_facts_scores_exactly_what_it_knows(batch_size):
    """The probe's windows scored by the facts themselves: every bucket at accuracy 1.
    Then the same model with the facts of ranks 1-3 wrong: bucket 0 at 0, the rest at 1,
    and the loss on the (noisy) targets above the logprob's mirror. Equal records per
    bucket, so the counts are records_per_bucket each (plus the wrap-around padding)."""
    lang = ZipfFacts(vocab=16, n_facts=60, zipf_exponent=1.5, fact_noise=0.3, seed=2)
    probe = facts_probe(lang, context=8, records_per_bucket=20, seed=0)
    inputs = probe.windows[:, :-1]
    n_buckets = len(probe.names)
    res = probe_metrics(_fact_lookup_logits(lang, inputs), probe.windows[:, 1:], probe.bucket, probe.answer, n_buckets)
    assert [r["accuracy"] for r in res] == [1.0] * n_buckets
    assert all(r["logprob"] > -1e-6 for r in res)
    noisy = (probe.windows[:, 1:] != probe.answer) & (probe.bucket >= 0)
    assert noisy.any()  # noise 0.3: some targets differ from the truth, so the loss sees them
    assert all(r["loss"] > 1.0 for r in res)
    assert sum(r["n"] for r in res) == int((probe.bucket >= 0).sum())
    assert all(r["n"] >= 20 for r in res)

    pooled = evaluate_probes(_FactModel(lang, wrong_ranks={1, 2, 3}), probe, batch_size, "cpu", nullcontext)
    assert [b["accuracy"] for b in pooled] == [0.0] + [1.0] * (n_buckets - 1)
    assert [b["n"] for b in pooled] == [r["n"] for r in res]
    assert [b["bucket"] for b in pooled] == probe.names


def test_token_probe_ranks_by_training_frequency():
    train = np.array([0] * 50 + [1] * 30 + [2] * 10 + [3] * 5 + [4])
    windows = torch.tensor([[0, 1, 2, 3, 4, 0]])
    probe = token_probe(windows, train, vocab=6)
    # ranks: 0->1, 1->2, 2->3, 3->4, 4->5, 5->6 ; bands [1,4), [4,7)
    assert probe.bucket.tolist() == [[0, 0, 1, 1, 0]]
    assert probe.mass[0] == pytest.approx(90 / 96)

"""Per-skill probes: loss, exact match and log-probability per frequency bucket.

Aggregate loss falls smoothly with scale while single skills can appear abruptly;
Schaeffer et al. (2023) argue much of the abruptness comes from discontinuous
metrics (exact match) and vanishes under continuous ones (log-probability), and
Michaud et al. (2023) predict skills are learned in order of frequency. Probes put
both views on every run.

A :class:`ProbeSet` is a fixed set of held-out windows with, for each target position,
a bucket id (-1 = not probed) and the correct answer token. For each bucket
:func:`probe_metrics` reports
- ``loss``: cross-entropy on the actual next token (nats),
- ``accuracy``: exact match, argmax of the model's distribution == the answer,
- ``logprob``: mean log-probability of the answer (nats).

Two kinds:
- ``facts`` (zipf_facts): a skill is a fact; buckets are its frequency rank in
  log-spaced bands (ranks [1,4), [4,16), ...). The probe set holds the same number of
  records per bucket, facts drawn uniformly within the bucket, so rare buckets are
  measured as precisely as common ones. The answer is the fact's true value (the
  noisy value token is the target of ``loss``); only value positions are probed.
- ``tokens`` (natural text or markov): buckets are the target token's frequency rank in
  the training stream, in the same log-spaced bands; the answer is the actual next token.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

BUCKET_BASE = 4  # bands of ranks [1,4), [4,16), [16,64), ...


@dataclass
class ProbeSet:
    kind: str  # "facts" or "tokens"
    windows: torch.Tensor  # (R, T+1) int64
    bucket: torch.Tensor  # (R, T) int64: bucket of each target position, -1 if not probed
    answer: torch.Tensor  # (R, T) int64: the correct answer at each target position
    names: list[str]  # bucket labels, e.g. "ranks 1-3"
    mass: list[float]  # probability mass of each bucket in the training distribution

    def to(self, device: torch.device | str) -> "ProbeSet":
        return replace(self, windows=self.windows.to(device), bucket=self.bucket.to(device),
                       answer=self.answer.to(device))


def rank_bands(n: int, base: int = BUCKET_BASE) -> list[tuple[int, int]]:
    """Log-spaced 1-based rank bands [lo, hi) covering ranks 1..n."""
    bands, lo = [], 1
    while lo <= n:
        hi = min(lo * base, n + 1)
        bands.append((lo, hi))
        lo = hi
    if len(bands) > 1 and bands[-1][1] - bands[-1][0] < (bands[-2][1] - bands[-2][0]) // base:
        bands[-2:] = [(bands[-2][0], n + 1)]  # fold a sliver of a last band into its neighbour
    return bands


def band_of(ranks: np.ndarray, bands: list[tuple[int, int]]) -> np.ndarray:
    """Band index of each 1-based rank."""
    edges = np.array([lo for lo, _ in bands][1:])
    return np.searchsorted(edges, ranks, side="right")


@torch.no_grad()
def probe_metrics(logits: torch.Tensor, targets: torch.Tensor, bucket: torch.Tensor,
                  answer: torch.Tensor, n_buckets: int) -> list[dict]:
    """Per-bucket loss, exact-match accuracy and answer log-probability (pure)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    ans_logp = logp.gather(-1, answer.unsqueeze(-1)).squeeze(-1)
    hit = (logp.argmax(-1) == answer).float()
    out = []
    for b in range(n_buckets):
        m = bucket == b
        n = int(m.sum())
        out.append({
            "n": n,
            "loss": float(nll[m].mean()) if n else None,
            "accuracy": float(hit[m].mean()) if n else None,
            "logprob": float(ans_logp[m].mean()) if n else None,
        })
    return out


@torch.no_grad()
def evaluate_probes(model, probe: ProbeSet, batch_size: int, device, autocast) -> list[dict]:
    """Run the model over the probe windows and pool the per-bucket metrics."""
    model.eval()
    k = len(probe.names)
    sums = np.zeros((k, 3))
    counts = np.zeros(k)
    for i in range(0, probe.windows.shape[0], batch_size):
        w = probe.windows[i : i + batch_size].to(device)
        with autocast():
            logits = model(w[:, :-1])
        per = probe_metrics(logits, w[:, 1:], probe.bucket[i : i + batch_size].to(device),
                            probe.answer[i : i + batch_size].to(device), k)
        for b, r in enumerate(per):
            if r["n"]:
                sums[b] += r["n"] * np.array([r["loss"], r["accuracy"], r["logprob"]])
                counts[b] += r["n"]
    model.train()
    out = []
    for b in range(k):
        n = counts[b]
        vals = sums[b] / n if n else [None] * 3
        out.append({"bucket": probe.names[b], "mass": probe.mass[b], "n": int(n),
                    "loss": None if not n else float(vals[0]),
                    "accuracy": None if not n else float(vals[1]),
                    "logprob": None if not n else float(vals[2])})
    return out


def facts_probe(lang, context: int, records_per_bucket: int, seed: int) -> ProbeSet:
    """Equal records per rank band, facts uniform within a band (see module docstring)."""
    rng = np.random.default_rng((seed, 2, 0))  # its own stream: not the train or val split
    bands = rank_bands(lang.n_facts)
    facts = np.concatenate([rng.integers(lo - 1, hi - 1, size=records_per_bucket) for lo, hi in bands])
    rng.shuffle(facts)
    n_rec = -(-(context + 1) // 3)
    n_rows = -(-facts.size // n_rec)
    facts = np.resize(facts, n_rows * n_rec)  # pad by wrapping; padded records are probed too
    rec = lang.records(rng, facts).reshape(n_rows, n_rec * 3)
    windows = rec[:, : context + 1]
    band = band_of(facts + 1, bands).reshape(n_rows, n_rec)
    truth = lang.values[facts].reshape(n_rows, n_rec)
    bucket = np.full((n_rows, context), -1)
    answer = windows[:, 1:].copy()
    for p in range(1, context + 1):  # target position p is a value token when p % 3 == 2
        if p % 3 == 2:
            bucket[:, p - 1] = band[:, p // 3]
            answer[:, p - 1] = truth[:, p // 3]
    mass = [float(lang.p[lo - 1 : hi - 1].sum()) for lo, hi in bands]
    names = [f"ranks {lo}-{hi - 1}" for lo, hi in bands]
    return ProbeSet("facts", torch.from_numpy(windows.astype(np.int64)), torch.from_numpy(bucket),
                    torch.from_numpy(answer.astype(np.int64)), names, mass)


def token_probe(windows: torch.Tensor, train_tokens: np.ndarray, vocab: int) -> ProbeSet:
    """Buckets by each target token's frequency rank in the training tokens."""
    counts = np.bincount(np.asarray(train_tokens, dtype=np.int64).ravel(), minlength=vocab)[:vocab]
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(vocab, dtype=np.int64)
    rank[order] = np.arange(1, vocab + 1)
    bands = rank_bands(vocab)
    tok_band = band_of(rank, bands)
    targets = windows[:, 1:].numpy()
    bucket = tok_band[targets]
    mass = [float(counts[order[lo - 1 : hi - 1]].sum() / max(counts.sum(), 1)) for lo, hi in bands]
    names = [f"token ranks {lo}-{hi - 1}" for lo, hi in bands]
    return ProbeSet("tokens", windows, torch.from_numpy(bucket), windows[:, 1:].clone(), names, mass)

"""Embedded synthetic languages with exactly known entropy floors.

``zipf_facts`` (the default). A language of facts: ``n_facts`` distinct key pairs
(k1, k2) over a vocabulary of ``vocab`` tokens, each with a fixed value token. The
stream is a sequence of independent 3-token records ``k1 k2 v``: the fact is drawn
with Zipf probability p(r) ∝ r^-s over its rank r (s = ``zipf_exponent``), and the
value is the fact's own with probability 1 - ``fact_noise``, else uniform over the
vocabulary. A model can lower its loss only by memorising facts, and the Zipf tail
means every extra bit of capacity or data buys rarer facts: the "quanta" picture of
Michaud et al. (2023), which gives power laws in N and D.

Every window starts at a record boundary, and records are independent, so the
Bayes-optimal loss at each target position is exact:
  k2 | k1 : H(fact) - H(k1)        v | k1 k2 : H(noisy value)        k1 : H(k1)
and ``entropy_floor`` is their mean over the window's target positions 1..context.

``markov``: a seeded random sparse Markov chain (each token has ``branching``
successors with Dirichlet probabilities); windows start from the stationary
distribution, so the floor is the chain's entropy rate.

Why these defaults (vocab 128, 16,384 facts, Zipf 1.5, noise 0.1): measured on width
ladders, see results/width_ladder/README.md.

Both sources build their windows in chunks seeded by (seed, split, chunk), so a
bigger token budget extends a smaller one (data ladders are nested), and the
held-out split comes from its own stream, independent of the training stream.

``data.unique_tokens`` (U_D): the training pool is the first ceil(U_D / context)
windows, rounded up to whole batches, of that same stream (so the pool of a smaller
U_D is a prefix of a larger one's, and U_D = D builds exactly the fresh run's
windows); the run repeats it in epochs (``WindowSampler``: epoch 0 in order, each
later epoch a seeded permutation), so after k whole epochs every pool window has been
seen exactly k times. The held-out windows come from the separate val stream, never
from the pool. The generators have no end, so any U_D <= D can be given.
"""
from __future__ import annotations

import numpy as np
import torch

from harness.config import ConfigError, unique_tokens
from harness.data.base import TokenData
from harness.data.probe_sets import facts_probe, token_probe
from harness.data.sampler import WindowSampler

CHUNK_ROWS = 4096
_SPLIT_IDS = {"train": 0, "val": 1}


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _rows_needed(n_tokens: int, context: int, batch_size: int) -> int:
    rows = -(-n_tokens // context)
    return -(-rows // batch_size) * batch_size


def _chunked(gen_chunk, n_rows: int, seed: int, split: str) -> np.ndarray:
    chunks, made, i = [], 0, 0
    while made < n_rows:
        rng = np.random.default_rng((seed, _SPLIT_IDS[split], i))
        chunks.append(gen_chunk(rng, CHUNK_ROWS))
        made += CHUNK_ROWS
        i += 1
    return np.concatenate(chunks)[:n_rows]


def _train_pool(gen_chunk, cfg, n_train_tokens: int) -> tuple[np.ndarray, dict]:
    """The training windows (whole batches) and the info they imply: every window fresh,
    or the ``data.unique_tokens`` pool that the run repeats (``epochs`` = D / pool)."""
    ctx, bs, seed, u = cfg.model.context, cfg.train.batch_size, cfg.data.seed, unique_tokens(cfg.data, n_train_tokens)
    rows = _chunked(gen_chunk, _rows_needed(n_train_tokens if u is None else int(u), ctx, bs), seed, "train")
    if u is None:
        return rows, {"epochs": 1.0}
    pool = rows.shape[0] * ctx  # targets in the pool, whole batches
    steps = -(-n_train_tokens // (bs * ctx))
    return rows, {"epochs": steps * bs * ctx / pool, "unique_tokens": pool}


def _as_tensor(rows: np.ndarray, vocab: int) -> torch.Tensor:
    return torch.from_numpy(rows.astype(np.int16 if vocab <= 32767 else np.int32))


class ZipfFacts:
    """The zipf_facts language itself: facts, probabilities, sampler and exact entropy."""

    def __init__(self, vocab: int, n_facts: int, zipf_exponent: float, fact_noise: float, seed: int):
        self.vocab, self.n_facts, self.noise = vocab, n_facts, fact_noise
        rng = np.random.default_rng((seed, 1234))
        pairs = rng.choice(vocab * vocab, size=n_facts, replace=False)  # rank order = draw order
        self.k1, self.k2 = pairs // vocab, pairs % vocab
        self.values = rng.integers(0, vocab, size=n_facts)
        p = np.arange(1, n_facts + 1, dtype=np.float64) ** -zipf_exponent
        self.p = p / p.sum()
        self.cdf = np.cumsum(self.p)

    def entropies(self) -> dict[str, float]:
        """Exact conditional entropies (nats) of each record position."""
        h_fact = _entropy(self.p)
        h_k1 = _entropy(np.bincount(self.k1, weights=self.p, minlength=self.vocab))
        keep = 1 - self.noise + self.noise / self.vocab
        h_value = _entropy(np.array([keep] + [self.noise / self.vocab] * (self.vocab - 1)))
        return {"k1": h_k1, "k2": h_fact - h_k1, "v": h_value}

    def floor(self, context: int) -> float:
        """Mean Bayes-optimal loss over target positions 1..context of an aligned window."""
        h = self.entropies()
        per_pos = [h["k1"], h["k2"], h["v"]]  # position p predicts record slot p % 3
        return float(np.mean([per_pos[p % 3] for p in range(1, context + 1)]))

    def sample_facts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, rng.random(n)), self.n_facts - 1)

    def records(self, rng: np.random.Generator, facts: np.ndarray) -> np.ndarray:
        """(len(facts), 3) records ``k1 k2 v``; each value is noisy with probability ``noise``."""
        v = np.where(rng.random(facts.size) < self.noise, rng.integers(0, self.vocab, facts.size),
                     self.values[facts])
        return np.stack([self.k1[facts], self.k2[facts], v], axis=1)

    def windows(self, rng: np.random.Generator, n_rows: int, context: int) -> np.ndarray:
        n_rec = -(-(context + 1) // 3)
        rec = self.records(rng, self.sample_facts(rng, n_rows * n_rec)).reshape(n_rows, n_rec * 3)
        return rec[:, : context + 1]


class ZipfFactsSource:
    @staticmethod
    def validate(cfg) -> None:
        d = cfg.data
        if not 1 <= d.n_facts <= d.vocab * d.vocab:
            raise ConfigError(f"data.n_facts={d.n_facts} must be in [1, data.vocab^2 = {d.vocab ** 2}]")
        if d.zipf_exponent <= 0:
            raise ConfigError(f"data.zipf_exponent={d.zipf_exponent} must be > 0")
        if not 0 <= d.fact_noise <= 1:
            raise ConfigError(f"data.fact_noise={d.fact_noise} must be in [0, 1]")

    @staticmethod
    def language(cfg) -> ZipfFacts:
        d = cfg.data
        return ZipfFacts(d.vocab, d.n_facts, d.zipf_exponent, d.fact_noise, d.seed)

    @staticmethod
    def build(cfg, n_train_tokens: int) -> TokenData:
        lang = ZipfFactsSource.language(cfg)
        ctx, bs, seed = cfg.model.context, cfg.train.batch_size, cfg.data.seed
        gen = lambda rng, n: lang.windows(rng, n, ctx)  # noqa: E731
        train, info = _train_pool(gen, cfg, n_train_tokens)
        val = _chunked(gen, -(-cfg.data.eval_tokens // ctx), seed, "val")
        return TokenData(
            vocab_size=lang.vocab,
            train=WindowSampler(_as_tensor(train, lang.vocab), bs, seed),
            val=torch.from_numpy(val.astype(np.int64)),
            entropy_floor=lang.floor(ctx),
            info={"entropies": lang.entropies(), **info},
            probe=facts_probe(lang, ctx, cfg.data.probe_records, seed) if cfg.data.probe_records else None,
        )


class MarkovChain:
    def __init__(self, vocab: int, branching: int, seed: int):
        rng = np.random.default_rng((seed, 4321))
        self.vocab = vocab
        P = np.zeros((vocab, vocab))
        for i in range(vocab):
            succ = rng.choice(vocab, size=min(branching, vocab), replace=False)
            P[i, succ] = rng.dirichlet(np.ones(len(succ)) * 0.5)
        self.P = P
        self.cum = np.cumsum(P, axis=1)
        w, v = np.linalg.eig(P.T)
        pi = np.real(v[:, np.argmin(np.abs(w - 1))])
        self.pi = np.abs(pi) / np.abs(pi).sum()

    def entropy_rate(self) -> float:
        return float(sum(self.pi[i] * _entropy(self.P[i]) for i in range(self.vocab)))

    def windows(self, rng: np.random.Generator, n_rows: int, context: int) -> np.ndarray:
        out = np.empty((n_rows, context + 1), dtype=np.int64)
        out[:, 0] = np.minimum(np.searchsorted(np.cumsum(self.pi), rng.random(n_rows)), self.vocab - 1)
        for t in range(1, context + 1):
            u = rng.random(n_rows)[:, None]
            out[:, t] = np.minimum((self.cum[out[:, t - 1]] < u).sum(axis=1), self.vocab - 1)
        return out


class MarkovSource:
    BRANCHING = 4

    @staticmethod
    def validate(cfg) -> None:
        if cfg.data.vocab > 4096:
            raise ConfigError(f"data.vocab={cfg.data.vocab} is too large for data.source=markov (max 4096)")

    @staticmethod
    def build(cfg, n_train_tokens: int) -> TokenData:
        chain = MarkovChain(cfg.data.vocab, MarkovSource.BRANCHING, cfg.data.seed)
        ctx, bs, seed = cfg.model.context, cfg.train.batch_size, cfg.data.seed
        gen = lambda rng, n: chain.windows(rng, n, ctx)  # noqa: E731
        train, info = _train_pool(gen, cfg, n_train_tokens)
        val = torch.from_numpy(_chunked(gen, -(-cfg.data.eval_tokens // ctx), seed, "val"))
        return TokenData(
            vocab_size=chain.vocab,
            train=WindowSampler(_as_tensor(train, chain.vocab), bs, seed),
            val=val,
            entropy_floor=chain.entropy_rate(),
            info=info,
            probe=token_probe(val, train, chain.vocab) if cfg.data.probe_records else None,
        )



def heldout_bayes_loss(data: dict, context: int) -> float | None:
    """The exact Bayes-optimal loss (nats/token) on the held-out windows that a run with
    this ``data`` config section and ``context`` evaluates on: the source's entropy
    floor plus the sampling noise of a finite validation set. None for sources whose
    conditionals are unknown (text). Pure: it regenerates the windows from the seed."""
    n_rows = -(-int(data["eval_tokens"]) // context)
    if data.get("source") == "zipf_facts":
        lang = ZipfFacts(data["vocab"], data["n_facts"], data["zipf_exponent"], data["fact_noise"], data["seed"])
        w = _chunked(lambda rng, n: lang.windows(rng, n, context), n_rows, data["seed"], "val")
        p_k1 = np.bincount(lang.k1, weights=lang.p, minlength=lang.vocab)
        fact = np.full(lang.vocab * lang.vocab, -1)
        fact[lang.k1 * lang.vocab + lang.k2] = np.arange(lang.n_facts)
        keep, other = 1 - lang.noise + lang.noise / lang.vocab, lang.noise / lang.vocab
        nll = np.empty((n_rows, context))
        for t in range(1, context + 1):  # target position t is record slot t % 3
            k1 = w[:, t - (t % 3)]
            if t % 3 == 0:
                nll[:, t - 1] = -np.log(p_k1[w[:, t]])
            elif t % 3 == 1:
                nll[:, t - 1] = -np.log(lang.p[fact[k1 * lang.vocab + w[:, t]]] / p_k1[k1])
            else:
                f = fact[k1 * lang.vocab + w[:, t - 1]]
                nll[:, t - 1] = -np.log(np.where(w[:, t] == lang.values[f], keep, other))
        return float(nll.mean())
    if data.get("source") == "markov":
        chain = MarkovChain(data["vocab"], MarkovSource.BRANCHING, data["seed"])
        w = _chunked(lambda rng, n: chain.windows(rng, n, context), n_rows, data["seed"], "val")
        return float(-np.log(chain.P[w[:, :-1], w[:, 1:]]).mean())
    return None

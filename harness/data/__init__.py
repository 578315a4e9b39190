"""Data sources. ``data.source`` picks one from ``SOURCES``.

- ``zipf_facts`` (default): an embedded synthetic language of Zipf-distributed facts
  with an exactly known entropy floor; generated from a seed, nothing downloaded.
- ``markov``: a seeded sparse Markov chain with a known entropy rate (a simpler toy).
- ``text``: natural text from files (or a Hub dataset, with network), tokenized by a
  byte-level BPE trained with ``tokenizers``.

A source is a class with two static methods: ``validate(cfg)`` raises
``harness.config.ConfigError`` for settings it cannot use, and
``build(cfg, n_train_tokens)`` returns a :class:`TokenData`.
"""
from __future__ import annotations

import json
from typing import Any

from harness.config import to_container
from harness.data.base import TokenData
from harness.data.synthetic import MarkovSource, ZipfFactsSource
from harness.data.text import TextSource

SOURCES: dict[str, Any] = {
    "zipf_facts": ZipfFactsSource,
    "markov": MarkovSource,
    "text": TextSource,
}


# Sources that are a pure function of the config: the last one built in this process
# is reused when the next run asks for the same data (a sweep's runs of one D at several
# widths, run one after another), instead of being generated again.
GENERATED = ("zipf_facts", "markov")
_last: dict[str, TokenData] = {}


def data_key(cfg: Any, n_train_tokens: int) -> str:
    """Everything a source reads: the data section, context, batch size and D."""
    return json.dumps([to_container(cfg)["data"], cfg.model.context, cfg.train.batch_size, n_train_tokens],
                      sort_keys=True, default=str)


def build_data(cfg: Any, n_train_tokens: int) -> TokenData:
    """Build the configured source with at least ``n_train_tokens`` training targets.

    The result is shared, not copied, when reused: callers must not modify it (the
    training loop only reads it, and ``TokenData.to`` makes copies)."""
    if cfg.data.source not in GENERATED:
        return SOURCES[cfg.data.source].build(cfg, n_train_tokens)
    key = data_key(cfg, n_train_tokens)
    if key not in _last:
        _last.clear()  # free the previous data before generating the next
        _last[key] = SOURCES[cfg.data.source].build(cfg, n_train_tokens)
    return _last[key]


__all__ = ["SOURCES", "TokenData", "build_data", "data_key"]

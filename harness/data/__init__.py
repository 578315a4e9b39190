"""Data sources. ``data.source`` picks one from ``SOURCES``.

- ``zipf_facts`` (default): an embedded synthetic language of Zipf-distributed facts
  with an exactly known entropy floor; generated from a seed, nothing downloaded.
- ``markov``: a seeded sparse Markov chain with a known entropy rate (a simpler toy).
- ``text``: natural text from files (or a Hub dataset, with network), tokenized by a
  byte-level BPE trained with ``tokenizers``.
"""
from __future__ import annotations

from typing import Any

from harness.data.base import TokenData
from harness.data.synthetic import MarkovSource, ZipfFactsSource
from harness.data.text import TextSource

SOURCES: dict[str, Any] = {
    "zipf_facts": ZipfFactsSource,
    "markov": MarkovSource,
    "text": TextSource,
}


def build_data(cfg: Any, n_train_tokens: int) -> TokenData:
    """Build the configured source with at least ``n_train_tokens`` training targets."""
    return SOURCES[cfg.data.source].build(cfg, n_train_tokens)


__all__ = ["SOURCES", "TokenData", "build_data"]

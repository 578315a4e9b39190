"""Fault injection: interrupts, kill -9, divergence, OOM, bad input, corrupt files,
concurrent writers and wandb trouble. Nothing may be lost or torn, nothing may crash.

Kept cheap for CI (2 cores): tiny configs, in-process where possible, forked writers
for the kill -9 trials, and a handful of real ``harness-train`` subprocesses.
"""
from __future__ import annotations

import glob
import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import pytest
import torch
from conftest import make_cfg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import records, tracking
from harness.config import ConfigError, to_container
from harness.validation import validate
from harness.model import GPT
from harness import checkpoint
from harness.records import ResultsLayout
from harness.train import train

TRAIN = [sys.executable, "-c", "from harness.cli import train_main; train_main()"]
ENV = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
FORK = multiprocessing.get_context("fork")


# --- helpers ------------------------------------------------------------------------

def nan_at(monkeypatch, k: int):
    """Make the k-th training forward (1-based) return a NaN loss."""
    original = GPT.forward
    calls = {"n": 0}

    def forward(self, idx, targets=None):
        if targets is None:  # evaluation of probes: logits only
            return original(self, idx, targets)
        logits, loss = original(self, idx, targets)
        if self.training:
            calls["n"] += 1
            if calls["n"] == k:
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)


def strict_json(path: Path):
    def reject(name):
        raise ValueError(f"non-standard constant {name}")

    return json.loads(Path(path).read_text(), parse_constant=reject)


# --- resume equivalence ---------------------------------------------------------------
# eval every 4 steps, checkpoints every 3, syncs every 10: an interrupt lands mid-window,
# so the checkpoint must carry the loss accumulator and the divergence reference.
RESUME = {"train.eval_every": 4, "train.checkpoint_every": 3}


@pytest.mark.parametrize("how", ["sigint", "hard"])
def test_interrupt_then_resume_matches_uninterrupted_run_exactly(tiny_cfg, tmp_path, how):
    ref = train(tiny_cfg(**RESUME, results_dir=str(tmp_path / "ref")))
    cfg = tiny_cfg(**RESUME)

    def interrupt(point):
        if point["step"] >= 12:
            if how == "sigint":  # deferred: finishes the step, checkpoints at 13, records
                os.kill(os.getpid(), signal.SIGINT)
            else:  # an exception mid-loop: the last periodic checkpoint (step 9) must do
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_eval=interrupt)
    rec = records.read_record(records.ResultsLayout(cfg.results_dir, "single").record(ref["run_id"]))
    assert rec["status"] == "interrupted"
    assert [p["step"] for p in rec["curve"]] == [4, 8, 12]
    assert rec["curve"] == ref["curve"][:3]
    ckpt = ResultsLayout.of(cfg).checkpoint(ref["run_id"])
    state = checkpoint.load(ckpt, torch.device("cpu"))
    assert state["step"] == (13 if how == "sigint" else 9)

    resumed = train(tiny_cfg(**RESUME, **{"train.resume": True}))
    assert resumed["status"] == "ok"
    assert resumed["resumed_from_step"] == state["step"]
    assert resumed["final_val_loss"] == ref["final_val_loss"]  # bitwise on CPU
    assert resumed["final_train_loss"] == ref["final_train_loss"]
    assert resumed["curve"] == ref["curve"]
    assert not ckpt.exists()  # an ok run removes its checkpoint


def test_time_based_checkpoints(tiny_cfg):
    cfg = tiny_cfg(**{"train.checkpoint_minutes": 1e-9, "train.eval_every": 4})
    seen = []

    def look(point):
        seen.append(checkpoint.load(ResultsLayout.of(cfg).checkpoint(records.run_id(to_container(cfg))), torch.device("cpu"))["step"])

    assert train(cfg, on_eval=look)["status"] == "ok"
    assert seen[:3] == [3, 7, 11]  # every step checkpoints; at an eval the last one is the step before
    assert not ResultsLayout.of(cfg).checkpoint(records.run_id(to_container(cfg))).exists()


@pytest.mark.skipif(signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, reason="SIGTERM handled by the runner")
def test_sigterm_stops_like_sigint(tiny_cfg):
    cfg = tiny_cfg(**{"train.eval_every": 4})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_eval=lambda p: p["step"] == 8 and os.kill(os.getpid(), signal.SIGTERM))
    rec = records.read_record(records.ResultsLayout(cfg.results_dir, "single").record(records.run_id(to_container(cfg))))
    assert rec["status"] == "interrupted" and "SIGTERM" in rec["error"] and rec["checkpoint_step"] == 9
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_resume_keeps_the_divergence_reference(tiny_cfg, tmp_path, monkeypatch):
    """The first step's loss is the divergence reference, so it must survive a resume."""
    kw = {"train.eval_every": 20, "train.checkpoint_every": 15}
    nan_at(monkeypatch, 18)
    ref = train(tiny_cfg(**kw, results_dir=str(tmp_path / "ref")))
    assert ref["status"] == "diverged"

    def stop(point):
        raise KeyboardInterrupt

    monkeypatch.undo()
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(**kw), on_eval=stop)  # stops at the first eval (20); checkpoint at 15
    nan_at(monkeypatch, 3)  # the 18th step overall is the 3rd after resuming from 15
    resumed = train(tiny_cfg(**kw, **{"train.resume": True}))
    assert resumed["status"] == "diverged" and resumed["resumed_from_step"] == 15
    assert resumed["error"] == ref["error"]  # same step, same loss, same reference


def test_unusable_checkpoint_is_ignored_with_a_warning(tiny_cfg, tmp_path):
    ref = train(tiny_cfg(results_dir=str(tmp_path / "ref")))
    cfg = tiny_cfg(**{"train.resume": True})
    ckpt = ResultsLayout.of(cfg).checkpoint(ref["run_id"])
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.warns(UserWarning, match=f"ignoring unusable checkpoint .*{ckpt.name}"):
        rec = train(cfg)
    assert rec["status"] == "ok" and rec["final_val_loss"] == ref["final_val_loss"]


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {tempfile.gettempdir()}/harness-pwned-{os.getpid()}",))


def test_checkpoint_with_pickled_code_is_never_executed(tiny_cfg):
    """weights_only=True: a checkpoint that smuggles a callable is refused, not run."""
    cfg = tiny_cfg(**{"train.resume": True})
    ckpt = ResultsLayout.of(cfg).checkpoint(records.run_id(to_container(cfg)))
    ckpt.parent.mkdir(parents=True)
    torch.save({"format": 1, "step": 3, "model": _Evil()}, ckpt)
    marker = Path(tempfile.gettempdir()) / f"harness-pwned-{os.getpid()}"
    with pytest.warns(UserWarning, match="ignoring unusable checkpoint"):
        rec = train(cfg)
    assert not marker.exists()
    assert rec["status"] == "ok" and "resumed_from_step" not in rec


def test_no_pickle_or_eval_on_the_loading_paths():
    root = Path(__file__).resolve().parent.parent / "harness"
    for path in [root / "records.py", root / "checkpoint.py", *(root / "train").glob("*.py"), root / "sweep.py",
                 root / "tracking.py"]:
        src = path.read_text()
        for bad in ("import pickle", "pickle.load", "yaml.load(", "allow_pickle=True"):
            assert bad not in src, f"{bad} in {path.name}"
        assert not re.search(r"(?<![\w.])(eval|exec)\(", src), path.name  # builtins, not model.eval()
        for line in src.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, line


# --- divergence -------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 7, 23])
def test_nan_loss_stops_run_as_diverged_and_never_checkpoints_it(tiny_cfg, monkeypatch, k):
    nan_at(monkeypatch, k)
    cfg = tiny_cfg(**{"train.checkpoint_every": 1})
    rec = train(cfg)
    assert rec["status"] == "diverged"
    assert f"at step {k}" in rec["error"]  # a checkpoint is due every step, so it syncs every step
    on_disk = strict_json(records.ResultsLayout(cfg.results_dir, "single").record(rec["run_id"]))
    assert on_disk["status"] == "diverged"
    ckpt = ResultsLayout.of(cfg).checkpoint(rec["run_id"])
    if k == 1:
        assert not ckpt.exists()
    else:
        state = checkpoint.load(ckpt, torch.device("cpu"))
        assert state["step"] == k - 1
        assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_huge_lr_with_default_grad_clip_diverges_through_the_cli(tmp_path):
    out = subprocess.run([*TRAIN, *TINY_CLI, "data.tokens=20480", f"results_dir={tmp_path}", "train.lr=50"],
                         capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "diverged" in out.stderr
    (path,) = (tmp_path / "single" / "runs").glob("*.json")
    rec = records.read_record(path)
    assert rec["status"] == "diverged" and rec["config"]["train"]["grad_clip"] == 1.0


# --- OOM ----------------------------------------------------------------------------------

@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("CUDA error: out of memory"),
])
def test_oom_is_recorded_and_the_sweep_goes_on(tiny_cfg, monkeypatch, error):
    from harness.sweep import run_job

    original = GPT.forward

    def forward(self, idx, targets=None):
        if self.config.width == 16:
            raise error
        return original(self, idx, targets)

    monkeypatch.setattr(GPT, "forward", forward)
    big = run_job(tiny_cfg(**{"model.width": 16, "data.tokens": 16 * 32 * 4}))
    small = run_job(tiny_cfg(**{"data.tokens": 16 * 32 * 4}))
    assert big["status"] == "oom" and "out of memory" in big["error"]
    assert small["status"] == "ok"
    recs, problems = records.load_records(Path(tiny_cfg().results_dir) / "single")
    assert sorted(r["status"] for r in recs) == ["ok", "oom"] and not problems


# --- bad input ----------------------------------------------------------------------------

BAD_CONFIG = [
    ({"train.diverge_factor": 0.5}, "train.diverge_factor=0.5 must be > 1"),
    ({"train.diverge_factor": float("nan")}, "train.diverge_factor=nan must be a finite number"),
    ({"train.checkpoint_every": -1}, "train.checkpoint_every=-1 must be >= 0"),
    ({"train.checkpoint_minutes": -1.0}, "train.checkpoint_minutes=-1.0 must be >= 0"),
    ({"train.eval_every": -5}, "train.eval_every=-5 must be >= 0"),
    ({"train.threads": -2}, "train.threads=-2 must be >= 0"),
    ({"train.weight_decay": -0.1}, "train.weight_decay=-0.1 must be >= 0"),
    ({"train.beta2": 1.0}, "train.beta2=1.0 must be in [0, 1)"),
    ({"train.min_lr_ratio": 2.0}, "train.min_lr_ratio=2.0 must be a fraction in [0, 1]"),
    ({"train.grad_clip": float("nan")}, "train.grad_clip=nan must be a finite number"),
    ({"train.warmup": float("inf")}, "train.warmup=inf must be a finite number"),
    ({"train.lr": True}, "train.lr=True must be a positive number"),
    ({"data.seed": -1}, "data.seed=-1 must be >= 0"),
    ({"data.flop_budget": -5.0}, "data.flop_budget=-5.0 must be a positive number"),
]


@pytest.mark.parametrize("overrides,message", BAD_CONFIG)
def test_config_gaps_give_one_line_before_training(tiny_cfg, overrides, message):
    with pytest.raises(ConfigError) as e:
        validate(tiny_cfg(**overrides))
    assert message in str(e.value) and "\n" not in str(e.value)


def _valid_record(**kw) -> dict:
    rec = {"run_id": "abc123", "sweep": "s", "status": "ok", "config": {"model": {"width": 32}},
           "params_total": 100, "params_embedding": 20, "params_nonembedding": 80, "tokens": 1000,
           "flops_6nd": 4.8e5, "flops": 5e5, "final_train_loss": 2.0, "final_val_loss": 2.1,
           "entropy_floor": None, "wall_time_s": 1.0, "tokens_per_s": 1000.0, "mfu": None, "device": "cpu",
           "curve": [{"step": 1, "tokens": 500, "flops": 2.4e5, "train_loss": 3.0, "val_loss": 2.9}]}
    rec.update(kw)
    return rec


def test_write_record_turns_non_finite_numbers_into_null(tmp_path):
    rec = _valid_record(status="diverged", final_train_loss=float("nan"), tokens_per_s=float("inf"),
                        curve=[{"tokens": 1, "train_loss": float("-inf"), "val_loss": torch.tensor(float("nan"))}])
    path = records.write_record(rec, tmp_path)
    on_disk = strict_json(path)
    assert on_disk["final_train_loss"] is None and on_disk["tokens_per_s"] is None
    assert on_disk["curve"][0] == {"tokens": 1, "train_loss": None, "val_loss": None}
    records.read_record(path)


def test_corrupt_truncated_and_foreign_files_are_reported_by_name_and_skipped(tmp_path):
    runs = tmp_path / "runs"
    good = records.write_record(_valid_record(), tmp_path / "r")
    runs.mkdir()
    (runs / "good.json").write_bytes(good.read_bytes())
    text = good.read_text()
    bad = {
        "truncated.json": text[: len(text) // 2],
        "empty.json": "",
        "binary.json": b"\x00\xff\xfe garbage \x89PNG",
        "foreign_list.json": "[1, 2, 3]",
        "foreign_obj.json": '{"hello": "world"}',
        "nan_literal.json": text.replace('"final_val_loss": 2.1', '"final_val_loss": NaN'),
        "inf_literal.json": text.replace('"tokens": 1000', '"tokens": Infinity'),
        "wrong_type.json": json.dumps(_valid_record(run_id=12345)),
        "string_loss.json": json.dumps(_valid_record(final_val_loss="2.1")),
        "bool_tokens.json": json.dumps(_valid_record(tokens=True)),
        "config_list.json": json.dumps(_valid_record(config=[1, 2])),
        "curve_junk.json": json.dumps(_valid_record(curve=[{"tokens": "many"}])),
        "unknown_status.json": json.dumps(_valid_record(status="exploded")),
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "huge_int.json": json.dumps(_valid_record()).replace('"tokens": 1000', '"tokens": ' + "9" * 5000),
    }
    for name, content in bad.items():
        (runs / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (runs / "folder.json").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs, problems = records.load_records(tmp_path)
    assert [r["run_id"] for r in recs] == ["abc123"]
    assert sorted(p.name for p, _ in problems) == sorted([*bad, "folder.json"])
    assert all(any(p.name in str(w.message) for w in caught) for p, _ in problems)
    records.write_runs_csv(recs, tmp_path / "runs.csv")


# Fuzzing: whatever bytes sit in a results dir, load_records returns (records, problems),
# every returned record is usable downstream (runs.csv), and nothing else escapes.
_VALID = json.dumps(_valid_record(), indent=1)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = [*_valid_record().keys(), "curve.0.tokens", "curve.0.val_loss", "curve.0"]


def _mutate(field: str, value) -> str:
    rec = _valid_record()
    if field.startswith("curve."):
        _, i, *rest = field.split(".")
        if rest:
            rec["curve"][0][rest[0]] = value
        else:
            rec["curve"][0] = value
    else:
        rec[field] = value
    return json.dumps(rec)  # allow_nan: NaN/Infinity literals included


file_contents = st.one_of(
    st.binary(max_size=600),
    st.integers(0, len(_VALID)).map(lambda n: _VALID[:n]),
    json_values.map(json.dumps),
    st.tuples(st.sampled_from(_FIELDS), json_values).map(lambda fv: _mutate(*fv)),
    st.sampled_from(_FIELDS[4:]).map(lambda f: _mutate(f, None)),
    st.tuples(st.sampled_from(["[", '{"a":', '{"config":']), st.integers(1, 50_000)).map(
        lambda t: t[0] * t[1] + "1" + ("]" if t[0] == "[" else "}") * t[1]),
    st.integers(1, 3000).map(lambda n: '{"run_id": "d", "sweep": "s", "status": "failed", "config": '
                              + '{"a": ' * n + "1" + "}" * n + "}"),
    st.sampled_from(["NaN", "Infinity", "-Infinity", '{"run_id": NaN}', _VALID.replace("2.1", "NaN"),
                     _VALID.replace("1000", "1" * 5000), _VALID]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(file_contents, min_size=1, max_size=4))
def test_fuzz_results_loader_never_raises(contents):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for i, c in enumerate(contents):
            (folder / f"{i}.json").write_bytes(c if isinstance(c, bytes) else c.encode("utf-8", "surrogatepass"))
        recs, problems = records.load_records(folder, warn=False)
        assert len(recs) + len(problems) == len(contents)
        assert all(isinstance(p, Path) and isinstance(why, str) for p, why in problems)
        for r in recs:
            records.check_record(r)
        records.write_runs_csv(recs, folder / "out" / "runs.csv")
        if _VALID in contents:
            assert any(r["run_id"] == "abc123" for r in recs)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_read_record_raises_only_bad_record(blob):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(blob)
        f.flush()
        try:
            records.read_record(Path(f.name))
        except records.BadRecord:
            pass


# --- kill -9 and concurrent writers -------------------------------------------------------

class _DiesHalfwayThrough:
    """The temp file of an atomic write: the first write puts half its bytes on disk, then
    the process is SIGKILLed."""

    def __init__(self, f):
        self._f = f

    def write(self, b):
        b = bytes(b)
        self._f.write(b[: len(b) // 2])
        self._f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def _rewrite_and_die(folder: str, what: str, where: str, new) -> None:
    """Child: overwrite the parent's record (or checkpoint) with ``new`` and SIGKILL itself
    at ``where``: halfway through the temp file, inside os.replace before the rename, or
    right after the rename."""
    real_fdopen, real_replace = os.fdopen, os.replace

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "mid_write":
        os.fdopen = lambda *a, **kw: _DiesHalfwayThrough(real_fdopen(*a, **kw))
    elif where == "in_replace":
        os.replace = lambda src, dst: die()
    else:
        os.replace = lambda src, dst: (real_replace(src, dst), die())
    if what == "record":
        records.write_record(new, folder)
    else:
        checkpoint.save(Path(folder) / "ckpt" / "c.pt", new)
    os._exit(0)  # not reached: the write must have hit the kill


@pytest.mark.parametrize("where", ["mid_write", "in_replace", "after_replace"])
@pytest.mark.parametrize("what", ["record", "checkpoint"])
def test_kill_9_inside_an_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path, what, where):
    """A process killed while it rewrites a record or a checkpoint leaves the old file
    byte for byte (killed before the rename) or the whole new one (after it); the temp
    file it leaves is never read as a record."""
    curve = [{"tokens": j, "flops": j, "train_loss": 1.0, "val_loss": 1.0} for j in range(3000)]
    if what == "record":
        old, new = _valid_record(config={"i": 0}, curve=curve), _valid_record(config={"i": 1}, curve=curve)
        path = records.write_record(old, tmp_path)
    else:
        old = {"format": 1, "i": 0, "w": torch.randn(256, 512)}
        new = {"format": 1, "i": 1, "w": torch.randn(256, 512)}
        path = tmp_path / "ckpt" / "c.pt"
        checkpoint.save(path, old)
    old_bytes = path.read_bytes()
    p = FORK.Process(target=_rewrite_and_die, args=(str(tmp_path), what, where, new))
    p.start()
    p.join(timeout=60)
    assert p.exitcode == -signal.SIGKILL  # killed at the chosen point, not finished
    temps = list(path.parent.glob(f".{path.name}.*.tmp"))
    if where == "after_replace":
        assert not temps
        loaded = (records.read_record(path) if what == "record"
                  else checkpoint.load(path, torch.device("cpu")))
        assert loaded["config" if what == "record" else "i"] == ({"i": 1} if what == "record" else 1)
        if what == "checkpoint":
            assert torch.equal(loaded["w"], new["w"])
    else:
        assert path.read_bytes() == old_bytes  # the old file, intact
        (tmp,) = temps  # what the kill left is the temp file alone
        if where == "in_replace":  # written and fsynced before the rename: already whole
            assert (json.loads(tmp.read_text())["config"] == {"i": 1} if what == "record"
                    else checkpoint.load(tmp, torch.device("cpu"))["i"] == 1)
        else:
            assert 0 < tmp.stat().st_size < len(old_bytes)
    if what == "record":
        recs, problems = records.load_records(tmp_path / "s")
        assert len(recs) == 1 and not problems


def test_atomic_write_fsyncs_the_temp_file_before_the_rename(tmp_path, monkeypatch):
    """A kill -9 cannot lose page-cache data, a power cut can: the temp file's bytes must
    be on disk before the rename makes it the record, and the folder after it."""
    import stat as stat_

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync", "dir" if stat_.S_ISDIR(st.st_mode) else st.st_ino))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    for write in (lambda: records.write_record(_valid_record(), tmp_path),
                  lambda: checkpoint.save(tmp_path / "c.pt", {"format": 1, "w": torch.ones(3)})):
        events.clear()
        write()
        (i,) = [k for k, e in enumerate(events) if e[0] == "replace"]
        inode = events[i][1]
        assert ("fsync", inode) in events[:i], events  # the temp file itself, before the rename
        assert ("fsync", "dir") in events[i + 1:], events


def _writer_batch(folder: str, w: int, n: int) -> None:
    for i in range(n):
        records.write_record(_valid_record(run_id=f"w{w}-{i}", config={"w": w, "i": i}), folder)
        records.write_record(_valid_record(run_id=f"shared-{i % 5}", config={"w": w, "i": i}), folder)


def test_parallel_writers_to_one_results_dir_lose_nothing(tmp_path):
    writers, n = 4, 60
    procs = [FORK.Process(target=_writer_batch, args=(str(tmp_path), w, n)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    runs = tmp_path / "s" / "runs"
    recs, problems = records.load_records(tmp_path / "s")
    assert not problems
    ids = {r["run_id"] for r in recs}
    assert ids == {f"w{w}-{i}" for w in range(writers) for i in range(n)} | {f"shared-{k}" for k in range(5)}
    assert not [p.name for p in runs.iterdir() if not p.name.endswith(".json")]  # no stray temp files


# --- real processes: SIGINT and SIGKILL, then resume ------------------------------------

TINY_CLI = ["model.width=32", "model.depth=1", "model.heads=2", "model.context=32", "data.vocab=32",
            "data.n_facts=256", "data.eval_tokens=2048", "train.batch_size=16", "train.threads=1",
            "train.progress=false"]
LONG_CLI = [*TINY_CLI, "data.tokens=122880", "train.eval_every=5", "train.checkpoint_every=5"]  # 240 steps


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    """The uninterrupted run of LONG_CLI, composed exactly like the CLI does, in-process."""
    from hydra import compose, initialize_config_dir

    from harness.cli import CONFIG_DIR

    out = tmp_path_factory.mktemp("ref")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*LONG_CLI, f"results_dir={out}"])
    return train(cfg)


def _start(tmp_path, *extra):
    return subprocess.Popen([*TRAIN, *LONG_CLI, f"results_dir={tmp_path}", *extra], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(tmp_path, proc, timeout=60):
    deadline = time.time() + timeout
    while not glob.glob(str(tmp_path / "single" / "checkpoints" / "*.pt")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.02)


def _resume_and_compare(tmp_path, reference):
    out = subprocess.run([*TRAIN, *LONG_CLI, f"results_dir={tmp_path}", "train.resume=true"],
                         capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    (path,) = (tmp_path / "single" / "runs").glob("*.json")
    rec = records.read_record(path)
    assert rec["status"] == "ok" and rec["resumed_from_step"] > 0
    assert rec["run_id"] == reference["run_id"]
    assert rec["final_val_loss"] == reference["final_val_loss"]
    assert rec["curve"] == reference["curve"]
    assert not list((tmp_path / "single" / "checkpoints").glob("*.pt"))


@pytest.mark.slow
def test_sigint_records_interrupted_with_partial_curve_then_resume_finishes(tmp_path, long_reference):
    proc = _start(tmp_path)
    _wait_for_checkpoint(tmp_path, proc)  # step 5 done, so a curve point exists
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "stopping after this step" in err
    (path,) = (tmp_path / "single" / "runs").glob("*.json")
    rec = records.read_record(path)
    assert rec["status"] == "interrupted" and "SIGINT" in rec["error"]
    assert len(rec["curve"]) >= 1
    assert rec["curve"] == long_reference["curve"][: len(rec["curve"])]
    assert rec["checkpoint_step"] >= 5
    _resume_and_compare(tmp_path, long_reference)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_finishes_identically(tmp_path, long_reference):
    proc = _start(tmp_path, "train.checkpoint_every=1")  # non-semantic: same run; kills land mid-save
    _wait_for_checkpoint(tmp_path, proc)
    time.sleep(random.Random(7).uniform(0.0, 0.3))
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not list((tmp_path / "single" / "runs").glob("*.json"))  # no partial record
    for ckpt in (tmp_path / "single" / "checkpoints").glob("*.pt"):
        checkpoint.load(ckpt, torch.device("cpu"))  # never torn
    _resume_and_compare(tmp_path, long_reference)


# --- wandb --------------------------------------------------------------------------------

class _FakeRun:
    id = "fake123"

    def __init__(self, fail=()):
        self.fail, self.logged = set(fail), []
        self.summary = {}

    def log(self, data, step=None):
        if "log" in self.fail:
            raise ConnectionError("wandb log: server went away")
        self.logged.append(step)

    def define_metric(self, name, **kw):
        pass

    def log_artifact(self, artifact):
        pass

    def finish(self, exit_code=0):
        if "finish" in self.fail:
            raise RuntimeError("wandb finish: upload failed")


def _fake_wandb(monkeypatch, init):
    mod = types.ModuleType("wandb")
    mod.Settings = lambda **kw: kw
    mod.Artifact = lambda name, type: types.SimpleNamespace(add_file=lambda *a, **k: None)
    mod.init = init
    monkeypatch.setitem(sys.modules, "wandb", mod)
    monkeypatch.setattr(tracking, "_online_failed", False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return mod


def test_online_without_api_key_falls_back_to_offline_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    (tmp_path / "netrc").write_text("machine example.com login x password y\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    modes = []
    _fake_wandb(monkeypatch, lambda mode, **kw: modes.append(mode) or _FakeRun())
    cfg = types.SimpleNamespace(mode="online", project="p", entity=None, tags=[])
    with pytest.warns(UserWarning, match="no API key"):
        tracker = tracking.Tracker(cfg, name="n", group="g", job_type="train", config={}, directory=tmp_path)
    assert modes == ["offline"] and tracker.run is not None
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password k\n")
    assert tracking.resolve_mode("online") == "online"


def test_unreachable_server_falls_back_to_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    modes = []

    def init(mode, **kw):
        modes.append(mode)
        if mode == "online":
            raise TimeoutError("Run initialization has timed out after 90.0 sec.")
        return _FakeRun()

    _fake_wandb(monkeypatch, init)
    cfg = types.SimpleNamespace(mode="online", project="p", entity=None, tags=[])
    with pytest.warns(UserWarning, match="logging offline"):
        tracker = tracking.Tracker(cfg, name="n", group="g", job_type="train", config={}, directory=tmp_path)
    assert modes == ["online", "offline"] and tracker.id == "fake123"
    tracking.Tracker(cfg, name="n2", group="g", job_type="train", config={}, directory=tmp_path)
    assert modes == ["online", "offline", "offline"]  # no second wait on a dead server


@pytest.mark.parametrize("failing", ["init", "log", "finish"])
def test_wandb_errors_only_warn_and_the_run_finishes(tiny_cfg, monkeypatch, failing):
    runs = []

    def init(mode, **kw):
        if failing == "init":
            raise RuntimeError("wandb.init exploded")
        runs.append(_FakeRun(fail={failing}))
        return runs[-1]

    _fake_wandb(monkeypatch, init)
    cfg = tiny_cfg(**{"wandb.mode": "offline", "data.tokens": 16 * 32 * 8})
    with pytest.warns(UserWarning, match="wandb disabled for this run"):
        rec = train(cfg)
    assert rec["status"] == "ok"
    assert records.read_record(records.ResultsLayout(cfg.results_dir, "single").record(rec["run_id"]))["status"] == "ok"
    if failing == "finish":
        assert runs[0].logged  # logging worked until finish failed

"""Entry points: ``harness-train`` (one run) and ``harness-sweep`` (a preset grid).

Both are Hydra apps over ``configs/config.yaml``. Config errors print one line
naming the key and exit with status 2 before any compute is spent.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from harness.config import ConfigError, register_configs
from harness.validation import validate
from harness.records import ResultsLayout
from harness.sweep import finish_sweep, plan, run_job, run_packs
from harness.train import train

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")


def _fail(prog: str, e: Exception) -> None:
    print(f"{prog}: error: {e}", file=sys.stderr)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _train_app(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except ConfigError as e:
        _fail("harness-train", e)
    try:
        record = train(cfg)
    except KeyboardInterrupt:
        print("harness-train: interrupted; the record says so and keeps the partial curve "
              "(train.resume=true continues from the checkpoint)", file=sys.stderr)
        sys.exit(130)
    path = ResultsLayout.of(cfg).record(record["run_id"])
    if record["status"] != "ok":
        print(f"harness-train: run {record['run_id']} {record['status']}: {record.get('error')} (record: {path})",
              file=sys.stderr)
        sys.exit(1)
    floor = record.get("entropy_floor")
    print(
        f"run {record['run_id']}: val loss {record['final_val_loss']:.4f} nats/token"
        + (f" (entropy floor {floor:.4f})" if floor is not None else "")
        + f", N={record['params_nonembedding']:,} non-embedding params, D={record['tokens']:,} tokens,"
        f" C=6ND={record['flops_6nd']:.3g} FLOP, {record['tokens_per_s']:,.0f} tok/s -> {path}"
    )


def train_main() -> None:
    register_configs()
    _train_app()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _sweep_app(cfg: DictConfig) -> None:
    run_job(cfg)


def resolve_sweep_name(args: list[str]) -> list[str]:
    """``sweep=auto`` (or no ``sweep=``) becomes ``gpu`` when CUDA is there, else ``cpu``."""
    auto = "gpu" if torch.cuda.is_available() else "cpu"
    names = [a for a in args if a.startswith("sweep=")]
    if not names:
        return ["sweep=" + auto, *args]
    return ["sweep=" + auto if a == "sweep=auto" else a for a in args]


def sweep_main() -> None:
    args = [a for a in sys.argv[1:] if a not in ("-m", "--multirun")]
    if any(a.startswith("-") for a in args):  # --help, --cfg, ...: straight to Hydra
        sys.argv = [sys.argv[0], *args]
        register_configs()
        _sweep_app()
        return
    args = resolve_sweep_name(args)
    register_configs()
    try:
        info = plan(CONFIG_DIR, args)
    except ConfigError as e:
        _fail("harness-sweep", e)
    axes = ", ".join(f"{k} ({len(v)})" for k, v in info["axes"].items()) or "none"
    first = info["configs"][0]
    if info["already_done"] == info["total"]:  # a finished sweep: one line, then the refit; nothing launched
        print(f"[{info['sweep']}] all {info['total']} runs over {axes} already done; refitting them")
        finish_sweep(first)
        return
    print(f"[{info['sweep']}] {info['total']} runs over {axes}; {info['already_done']} already done and will be skipped")
    if first.sweep.pack > 0:  # packed runs replace Hydra's one-job-per-run launch
        run_packs(info["configs"], first.sweep.pack)
        finish_sweep(first)
        return
    sys.argv = [sys.argv[0], "--multirun", *args]
    _sweep_app()

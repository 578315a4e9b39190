"""Sweeps through a live SLURM (``hydra/launcher=submitit_slurm``): same losses as the
basic launcher, and a time limit, a preemption (``scontrol requeue``) and an
``scancel`` survived through checkpoints.

Needs a running cluster with partition ``debug``: ``sudo scripts/slurm_local.sh start``
(root; ``apt-get install -y slurm-wlm munge``). Without one these tests skip with the
reason; with ``HARNESS_REQUIRE_SLURM=1`` (CI) they fail instead. SLURM holds a
requeued job for about two minutes (its BeginTime); the tests release such jobs with
``scontrol update StartTime=now``, as an admin can, so they take seconds, not minutes.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import records

SWEEP = [sys.executable, "-c", "from harness.cli import sweep_main; sweep_main()"]
SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug"]
# one thread everywhere: CPU results are bitwise reproducible for a fixed thread count
COMMON = ["sweep=tiny", "train.threads=1"]
SHORT = ["model.width=16", "data.tokens=524288", "train.checkpoint_every=100"]  # ~5 s of training


def cluster_problem() -> str | None:
    """Why no cluster can take jobs here, or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client tools (apt-get install -y slurm-wlm munge; sudo scripts/slurm_local.sh start)"
    out = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%T"], capture_output=True, text=True, timeout=30)
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*") in ("idle", "mixed", "allocated") for s in states):
        return (f"no SLURM partition 'debug' with a node up ({(out.stderr or out.stdout).strip()[:120] or 'none'}); "
                "start one with: sudo scripts/slurm_local.sh start")
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = cluster_problem()
    if problem:
        if os.environ.get("HARNESS_REQUIRE_SLURM"):
            pytest.fail(f"HARNESS_REQUIRE_SLURM is set but {problem}")
        pytest.skip(problem)


class Sweep:
    """One harness-sweep process, its output in files next to its results."""

    def __init__(self, results: Path, *overrides: str):
        self.results = results
        results.mkdir(parents=True, exist_ok=True)
        self.out, self.err = open(results / "stdout.txt", "w"), open(results / "stderr.txt", "w")
        env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([*SWEEP, *COMMON, f"results_dir={results}", *overrides],
                                     stdout=self.out, stderr=self.err, env=env)

    def jobs(self) -> list[dict]:
        """This sweep's SLURM jobs that slurmctld still holds (their batch script is under results)."""
        out = subprocess.run(["squeue", "--array", "-h", "--states=all", "-o", "%i|%T|%r|%o"],
                             capture_output=True, text=True, timeout=30).stdout
        rows = [dict(zip(("id", "state", "reason", "command"), line.split("|", 3))) for line in out.splitlines()]
        return [r for r in rows if str(self.results) in r["command"]]

    def wait(self, timeout: float) -> subprocess.CompletedProcess:
        """Wait for the sweep to end, releasing its requeued jobs from SLURM's BeginTime hold."""
        deadline = time.time() + timeout
        while self.proc.poll() is None:
            if time.time() > deadline:
                self.proc.kill()
                subprocess.run(["scancel", *[j["id"] for j in self.jobs()]], timeout=30)
                pytest.fail(f"sweep still running after {timeout} s; stderr:\n{self.text('stderr')[-3000:]}")
            for j in self.jobs():
                if j["state"] == "PENDING" and j["reason"] == "BeginTime":
                    subprocess.run(["scontrol", "update", f"jobid={j['id']}", "starttime=now"], timeout=30)
            time.sleep(0.5)
        self.out.close()
        self.err.close()
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode,
                                           self.text("stdout"), self.text("stderr"))

    def text(self, name: str) -> str:
        return (self.results / f"{name}.txt").read_text()

    def records(self) -> dict[str, dict]:
        recs, problems = records.load_records(self.results / "tiny")
        assert not problems
        return {r["run_id"]: r for r in recs}

    def job_logs(self) -> str:
        return "".join(p.read_text() for p in sorted(self.results.glob("tiny/hydra/*/.submitit/*/*.err")))

    def running_job_once_training(self, timeout: float = 120) -> str:
        """The id of this sweep's job once its run has written a checkpoint (step 100)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if list((self.results / "tiny" / "checkpoints").glob("*.pt")):
                (job,) = [j for j in self.jobs() if j["state"] == "RUNNING"]
                return job["id"]
            assert self.proc.poll() is None, self.text("stderr")[-3000:]
            time.sleep(0.2)
        pytest.fail("the run wrote no checkpoint in time")


def restarts(job_id: str) -> int:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=30).stdout
    return int(out.split("Restarts=", 1)[1].split()[0])


def only(recs: dict[str, dict]) -> dict:
    (rec,) = recs.values()
    return rec


def same_run(a: dict, b: dict) -> None:
    """Bitwise: the same final losses and the same curve."""
    assert a["run_id"] == b["run_id"]
    assert a["final_val_loss"] == b["final_val_loss"]
    assert a["final_train_loss"] == b["final_train_loss"]
    assert [(p["step"], p["train_loss"], p["val_loss"]) for p in a["curve"]] == \
           [(p["step"], p["train_loss"], p["val_loss"]) for p in b["curve"]]


@pytest.fixture(scope="module")
def short_baseline(cluster, tmp_path_factory):
    """The SHORT run through the basic launcher, started at first use, in the background."""
    sweep = Sweep(tmp_path_factory.mktemp("baseline"), *SHORT)
    done: list[dict] = []

    def get() -> dict:
        if not done:
            out = sweep.wait(300)
            assert out.returncode == 0, out.stderr[-3000:]
            done.append(only(sweep.records()))
        return done[0]

    return get


# --- without a cluster ----------------------------------------------------------------


def test_submitit_slurm_launcher_allows_requeues_at_a_time_limit():
    """Our registration of hydra/launcher=submitit_slurm survives Hydra's plugin scan."""
    from hydra import compose, initialize_config_dir

    from harness.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=submitit_slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher.max_num_timeout == 3
    assert cfg.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")


def test_squeue_watcher_reads_array_tasks_in_sacct_format():
    from harness.slurm import SqueueWatcher

    w = SqueueWatcher(delay_s=60)
    info = w.read_info(b"12_0|RUNNING|vm\n12_1|CANCELLED|vm\n12_[2-3]|PENDING|\n13|COMPLETING|vm\n")
    assert {k: v["State"] for k, v in info.items()} == {
        "12_0": "RUNNING", "12_1": "CANCELLED", "12_2": "PENDING", "12_3": "PENDING", "13": "COMPLETING"}
    assert w._make_command() is None  # nothing registered: no squeue call


def test_a_sigusr2_while_the_job_starts_is_held_then_stops_the_loop():
    """A SIGUSR2 before submitit and the loop have set handlers (while the job imports)
    does not kill the task: it is remembered and replayed when the loop listens."""
    code = """
import os, signal
import harness
os.kill(os.getpid(), signal.SIGUSR2)  # still importing, as far as the job knows
from harness import slurm, slurm_prestart
assert slurm_prestart.early == [signal.SIGUSR2]
request = {}
previous = slurm.take_signals(request)
assert request == {"signal": "SIGUSR2", "requeue": "SIGUSR2"}, request
assert slurm_prestart.early == []
print("survived")
"""
    env = dict(os.environ, SUBMITIT_EXECUTOR="slurm", SLURM_JOB_ID="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "survived" in out.stdout, out.stderr[-2000:]
    assert "SIGUSR2 from SLURM: stopping after this step" in out.stderr
    env.pop("SUBMITIT_EXECUTOR")  # outside a submitit job SIGUSR2 keeps its default action
    out = subprocess.run([sys.executable, "-c", "import os, signal, harness; os.kill(os.getpid(), signal.SIGUSR2)"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == -signal.SIGUSR2


def test_outside_slurm_signals_and_records_are_unchanged(monkeypatch):
    from harness import slurm

    for var in ("SUBMITIT_EXECUTOR", "SLURM_JOB_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(var, raising=False)
    assert not slurm.in_job() and slurm.job_info() == {} and slurm.requeues() == 0
    assert slurm.take_signals({}) == {}
    slurm.after_stop({"signal": "SIGTERM"}, {"status": "interrupted"})  # returns, no exit
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert slurm.requeues() == 2  # an sbatch'ed harness-train that SLURM requeued resumes too


# --- against the live cluster -------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.usefixtures("cluster")
def test_slurm_sweep_equals_basic_launcher_and_fits(tmp_path):
    grid = ["model.width=16,24,32"]  # 3 widths x the preset's 2 data sizes: 6 runs, enough to fit
    basic = Sweep(tmp_path / "basic", *grid)
    slurm = Sweep(tmp_path / "slurm", *grid, *SLURM, "sweep.fit=true")  # sweep.fit: not in the run id
    b, s = basic.wait(300), slurm.wait(300)
    assert b.returncode == 0, b.stderr[-3000:]
    assert s.returncode == 0, s.stderr[-3000:]
    assert "6 ok" in s.stdout and "fit, figures and report in" in s.stdout
    assert (tmp_path / "slurm" / "tiny" / "fit.json").exists()
    assert "sacct" not in s.stderr  # job states came from squeue, without a warning per poll
    plain, queued = basic.records(), slurm.records()
    assert sorted(plain) == sorted(queued) and len(queued) == 6
    for rid, rec in queued.items():
        assert rec["status"] == "ok" and rec["requeues"] == 0 and rec["slurm_job_id"]
        same_run(rec, plain[rid])


def tokens_for(seconds: float, tmp_path: Path) -> int:
    """Training tokens that take about ``seconds`` here, from a short run of the same shape."""
    import torch
    from hydra import compose, initialize_config_dir

    from harness.cli import CONFIG_DIR
    from harness.train import train

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*COMMON, "model.width=16", "data.tokens=262144",
                                           f"results_dir={tmp_path}", "wandb.mode=disabled"])
    threads = torch.get_num_threads()
    try:
        rec = train(cfg)
    finally:
        torch.set_num_threads(threads)
    batch = cfg.train.batch_size * cfg.model.context
    return int(rec["tokens_per_s"] * seconds) // batch * batch


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.usefixtures("cluster")
def test_time_limit_requeues_and_resumes_to_the_same_loss(tmp_path):
    """timeout_min=1 and signal_delay_s=45: SLURM sends SIGUSR2 15-45 s into the job (it
    checks time limits every 30 s), so a run that trains for ~48 s is always signalled.
    submitit unpickles the job (7 s idle, over 10 s busy) before it sets its handlers; a
    SIGUSR2 in that window is held by harness.slurm_prestart. The uninterrupted run is
    trained first, not beside the SLURM job, to keep that window short."""
    run = ["model.width=16", f"data.tokens={tokens_for(48, tmp_path / 'calibrate')}"]
    basic = Sweep(tmp_path / "basic", *run)
    b = basic.wait(300)
    assert b.returncode == 0, b.stderr[-3000:]
    slurm = Sweep(tmp_path / "slurm", *run, *SLURM, "hydra.launcher.timeout_min=1",
                  "hydra.launcher.signal_delay_s=45", "hydra.launcher.max_num_timeout=5")
    s = slurm.wait(400)
    assert s.returncode == 0, s.stderr[-3000:]
    (job,) = slurm.jobs()
    rec = only(slurm.records())
    assert rec["status"] == "ok"
    assert rec["requeues"] >= 1 and rec["requeues"] == restarts(job["id"])
    assert rec["resumed_from_step"] > 0
    logs = slurm.job_logs()
    assert "harness: SIGUSR2 from SLURM: stopping after this step" in logs
    assert "this job is timed-out" in logs  # submitit's verdict: a time limit, not a preemption
    same_run(rec, only(basic.records()))


@pytest.mark.slurm
@pytest.mark.slow
def test_scontrol_requeue_preemption_resumes_to_the_same_loss(tmp_path, short_baseline):
    slurm = Sweep(tmp_path / "slurm", *SHORT, *SLURM)
    job = slurm.running_job_once_training()
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
    s = slurm.wait(300)
    assert s.returncode == 0, s.stderr[-3000:]
    assert "1 ok" in s.stdout
    rec = only(slurm.records())
    assert rec["status"] == "ok" and rec["requeues"] == 1 == restarts(job)
    assert rec["resumed_from_step"] >= 100
    assert "SLURM is requeueing this job" in slurm.job_logs()
    same_run(rec, short_baseline())


@pytest.mark.slurm
@pytest.mark.slow
def test_scancel_leaves_interrupted_record_and_rerun_resumes(tmp_path, short_baseline):
    slurm = Sweep(tmp_path / "slurm", *SHORT, *SLURM)
    job = slurm.running_job_once_training()
    subprocess.run(["scancel", job], check=True, timeout=30)
    s = slurm.wait(120)
    assert s.returncode == 0, s.stderr[-3000:]
    assert "1 interrupted" in s.stdout  # the sweep finished and counted it
    rec = only(slurm.records())
    assert rec["status"] == "interrupted" and "SIGTERM" in rec["error"]
    ckpt = tmp_path / "slurm" / "tiny" / "checkpoints" / f"{rec['run_id']}.pt"
    assert ckpt.exists() and rec["checkpoint_step"] >= 100
    rerun = Sweep(tmp_path / "slurm", *SHORT, *SLURM, "train.resume=true")
    again = rerun.wait(300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 ok" in again.stdout
    rec2 = only(rerun.records())
    assert rec2["status"] == "ok" and rec2["resumed_from_step"] == rec["checkpoint_step"]
    assert not ckpt.exists()
    same_run(rec2, short_baseline())

"""pipeline.grid on a real SLURM: a single-node cluster (munged, slurmctld, slurmd from the distribution's packages,
tests/slurm_cluster.py) without accounting, as many small clusters run. Skipped, with the reason, where SLURM is not
installed (``apt-get install slurm-wlm munge``) or the tests do not run as root.

The cluster requeues a job after 5 s instead of SLURM's default 120 s (``cred_expire``; the environment variable
``SLURM_TEST_REQUEUE_DELAY_S`` sets it) and gives a stopped job ``KillWait`` 30 s (SLURM's default) before SIGKILL.
The requeue test prints what the requeue cost (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_prepared
from slurm_cluster import SlurmCluster, unavailable
from test_grid import dvc_status, make_project, pipeline_stages, run_grid

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
SLURM_GRID = {"executor": "slurm", "slurm": {"cpus_per_job": 1, "gpus_per_job": 0, "mem_gb": None, "time_min": 10}}
TINY_UNET = {"model": "unet", "model_kwargs": {"widths": [4, 8, 16, 32, 64]}}


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    why = unavailable()
    if why:
        pytest.skip(why)
    delay = int(os.environ.get("SLURM_TEST_REQUEUE_DELAY_S", "5"))
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), kill_wait_s=30, requeue_delay_s=delay)
    old = os.environ.get("SLURM_CONF")
    try:
        cluster.start()
        os.environ["SLURM_CONF"] = str(cluster.conf)
        yield cluster
    finally:
        cluster.stop()
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


def _wait_for(predicate, timeout: float, what: str, cluster: SlurmCluster | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s" + (f"\n{cluster.logs()}" if cluster else ""))


# ------------------------------------------------------------------------------ stages that only write files


def test_a_tiny_grid_runs_on_slurm_and_leaves_nothing_for_dvc_repro(slurm, tmp_path, caplog):
    grid = {**SLURM_GRID, "exclude": ["report"]}
    root = make_project(tmp_path / "p", pipeline_stages(names=("a", "b"), flaky=False), grid=grid)
    outcome, text = run_grid(root, jobs=2)
    assert outcome.exit_code == 0, text
    assert [c.status for c in outcome.chains] == ["done"] * 3 and "(slurm job " in text
    env = json.loads((root / "results/b/metrics.json").read_text())["env"]
    assert env["SLURM_JOB_ID"] and env["OMP_NUM_THREADS"] == "1"
    # no accounting on this cluster: said once, and submitit's per-poll warning never appears
    assert text.count("no SLURM accounting (sacct: Slurm accounting storage is disabled)") == 1
    assert "Bypassing" not in text and not [r for r in caplog.records if "Bypassing" in r.getMessage()]
    assert "#SBATCH --requeue" in next((root / ".dvc/tmp/grid/runs").glob("*/submitit/*_submission.sh")).read_text()

    assert set(dvc_status(root)) == {"report"}  # excluded: left to dvc repro
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    repro = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert repro.stdout.count("Running stage") == 1 and "Running stage 'report'" in repro.stdout
    assert dvc_status(root) == {}


def test_a_failing_job_is_reported_with_its_log_and_exit_status_1(slurm, tmp_path):
    stages = pipeline_stages(names=(), flaky=True)
    root = make_project(tmp_path / "p", {k: stages[k] for k in ("make", "flaky", "after_flaky")}, grid=SLURM_GRID)
    outcome, text = run_grid(root)
    assert outcome.exit_code == 1
    assert outcome.states == {"make": "done", "flaky": "failed", "after_flaky": "blocked"}
    assert "FAILED flaky (exit status 3)" in text and "something went wrong" in text
    assert "not run (they need a failed stage): after_flaky" in text
    assert set(dvc_status(root)) == {"flaky", "after_flaky"}


# ------------------------------------------------------------------- a training interrupted by the scheduler


def training_project(root: Path, epochs: int, checkpoint_every: int, grid: dict, n_train: int = 64) -> Path:
    """A DVC project with one stage: pipeline.train of a tiny UNet on a tiny prepared dataset."""
    run = "runs/tiny"
    stage = {
        "cmd": f"python -m pipeline.train --data prepared --model tiny_run --seed 3 --out {run}",
        "deps": ["prepared"],
        "params": ["train", "models"],
        "outs": [f"{run}/best.pt", {f"{run}/train.json": {"cache": False}}, {f"{run}/log.csv": {"cache": False}}],
    }
    make_project(root, {"train": stage}, grid=grid)
    write_prepared(root / "prepared", n_train=n_train)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"] = {
        "epochs": epochs,
        "batch_size": 8,
        "img_size": 32,
        "warmup_epochs": 1,
        "reference_epochs": epochs,
        "num_workers": 0,
        "device": "cpu",
        "checkpoint_every": checkpoint_every,
    }
    params["models"] = {"tiny_run": TINY_UNET}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _reference_run(root: Path, out: Path) -> subprocess.Popen:
    """The same training uninterrupted, on one thread as the SLURM job (run meanwhile, on the other core)."""
    cmd = [sys.executable, "-m", "pipeline.train", "--data", "prepared", "--model", "tiny_run", "--seed", "3"]
    return subprocess.Popen([*cmd, "--out", str(out)], cwd=root, env=_env(), stdout=subprocess.DEVNULL)


def _grid(root: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pipeline.grid", "--progress-s", "5", "--summary-json", "summary.json"]
    return subprocess.Popen(cmd, cwd=root, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _progress(root: Path) -> dict:
    try:
        return json.loads((root / "runs/tiny/progress.json").read_text())
    except (OSError, ValueError):
        return {}


def _running_job(cluster: SlurmCluster) -> str:
    """The id of the job SLURM runs now ('' when none)."""
    return "".join(cluster.run(["squeue", "--noheader", "--states=RUNNING", "--format=%i"]).stdout.split()[:1])


def _finish(grid: subprocess.Popen, reference: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = grid.communicate(timeout=timeout)
        reference.wait(timeout=timeout)
    finally:
        for proc in (grid, reference):
            if proc.poll() is None:
                proc.kill()
    assert grid.returncode == 0 and reference.returncode == 0, out
    return out


def _same_weights(a: Path, b: Path) -> None:
    import torch

    from engine.checkpoint import load_checkpoint

    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _attempts(root: Path) -> list[dict]:
    from pipeline.grid.jobs import read_record

    records = list((root / ".dvc/tmp/grid/runs").glob("*/jobs/train.json"))
    return read_record(records[0])["attempts"] if records else []


def test_a_requeued_training_is_waited_for_and_continues_from_its_checkpoint(slurm, tmp_path):
    """``scontrol requeue`` (what PreemptMode=REQUEUE does) after epoch 2 of 12: SLURM sends SIGTERM, the training
    ends the epoch in progress, saves resume.pt (the periodic one would come after epoch 6) and exits; the job exits
    without a result and SLURM restarts it; the grid waits, the job runs the stage again, the training continues
    from the epoch it saved, and best.pt equals an uninterrupted run's."""
    root = training_project(tmp_path / "p", epochs=12, checkpoint_every=6, grid=SLURM_GRID)
    reference = _reference_run(root, tmp_path / "reference")
    grid = _grid(root)
    _wait_for(lambda: _progress(root).get("epoch", 0) >= 2, 180, "epoch 2 of the training", slurm)
    job = _running_job(slurm)
    requeued_at = time.time()
    slurm.run(["scontrol", "requeue", job])
    out = _finish(grid, reference, 300)

    summary = json.loads((root / "summary.json").read_text())
    assert summary["stages"] == {"train": "done"}
    (run,) = summary["runs"]
    assert run["status"] == "done" and run["requeued"] == 1 and run["epochs_lost"] == 0, out
    assert "requeued    epochs lost" in out  # the summary's columns
    resumed = json.loads((root / "runs/tiny/train.json").read_text())["resumed"]
    assert len(resumed) == 1 and resumed[0]["lost_epochs"] == 0 and resumed[0]["time"] > requeued_at
    stopped_at = resumed[0]["from_epoch"]
    assert 3 <= stopped_at < 6  # the epoch in progress when SIGTERM came: before the first periodic checkpoint
    log = next((root / ".dvc/tmp/grid/runs").glob("*/logs/train.log")).read_text()
    assert f"SIGTERM: stopped after epoch {stopped_at} of 12" in log and "[grid] attempt 2" in log
    assert f"from resume.pt after epoch {stopped_at} of 12" in log
    first, second = _attempts(root)
    assert first["slurm_job_id"] == second["slurm_job_id"] == job and second["restart"] == 1
    print(
        f"\nrequeue cost (requeue delay {slurm.requeue_delay_s} s): {first['end'] - requeued_at:.1f} s to the job's"
        f" exit (epoch {stopped_at} finished and saved), {second['start'] - first['end']:.1f} s in SLURM's queue, "
        f"{resumed[0]['time'] - second['start']:.1f} s from the restart to the training continuing; "
        f"{resumed[0]['lost_epochs']} epochs lost; the job's wall time {run['seconds']:.1f} s"
    )
    _same_weights(tmp_path / "reference/best.pt", root / "runs/tiny/best.pt")
    assert dvc_status(root) == {} and not (root / "runs/tiny/progress.json").exists()


def test_a_training_at_its_time_limit_saves_is_requeued_by_submitit_and_continues(slurm, tmp_path):
    """A job with a time limit of 2 minutes and ``signal_delay_s`` 50: SLURM sends SIGUSR2 about 70 s after the
    start, or up to 60 s earlier (sbatch --signal: "the resolution of event handling"); submitit calls the job's
    checkpoint, which passes the signal to the training, waits until it has saved resume.pt at the end of its
    epoch, and submitit requeues the job. While it waits in the queue, the test gives it 10 minutes, so that the
    second run finishes. With a 1-minute limit the signal came 0.1 s after the start once, before Python had set
    its handlers (exit 140). The training must outlast the signal: 384 images x 160 epochs took 120 s alone on a
    2-core bf16 CPU (64 images: 25 s, so that it sometimes ended before SIGUSR2 came)."""
    grid = {**SLURM_GRID, "slurm": {**SLURM_GRID["slurm"], "time_min": 2, "signal_delay_s": 50}}
    # no periodic resume.pt
    root = training_project(tmp_path / "p", epochs=160, checkpoint_every=160, grid=grid, n_train=384)
    reference = _reference_run(root, tmp_path / "reference")
    proc = _grid(root)
    started = _wait_for(lambda: _progress(root).get("epoch", 0) >= 1 and _running_job(slurm), 180, "training", slurm)
    first = _wait_for(lambda: (a := _attempts(root)) and a[0].get("end") and a[0], 180, "SIGUSR2 and requeue", slurm)
    assert (first.get("stopped") or "").startswith("SIGUSR2"), first
    slurm.run(["scontrol", "update", f"JobId={started}", "TimeLimit=10"])
    out = _finish(proc, reference, 600)

    (run,) = json.loads((root / "summary.json").read_text())["runs"]
    assert run["status"] == "done" and run["requeued"] >= 1 and run["epochs_lost"] == 0, out
    resumed = json.loads((root / "runs/tiny/train.json").read_text())["resumed"]
    assert resumed[0]["lost_epochs"] == 0 and 1 <= resumed[0]["from_epoch"] < 160
    log = next((root / ".dvc/tmp/grid/runs").glob("*/logs/train.log")).read_text()
    assert f"SIGUSR2: stopped after epoch {resumed[0]['from_epoch']} of 160" in log
    submitit_log = next((root / ".dvc/tmp/grid/runs").glob(f"*/submitit/{started}_0_log.out")).read_text()
    assert "this job is timed-out" in submitit_log and f"Requeued job {started}" in submitit_log
    _same_weights(tmp_path / "reference/best.pt", root / "runs/tiny/best.pt")
    assert dvc_status(root) == {}


def test_the_whole_grid_runs_inside_one_allocation(slurm, tmp_path):
    """``sbatch --wrap 'python -m pipeline.grid --executor local'``: the coordinator and its local jobs share one
    allocation (its cores, and its GPUs through CUDA_VISIBLE_DEVICES)."""
    root = make_project(tmp_path / "p", pipeline_stages(names=("a", "b"), flaky=False))
    wrap = f"--wrap={sys.executable} -m pipeline.grid --executor local"
    argv = ["sbatch", f"--cpus-per-task={slurm.cpus}", "--wait", "--output=grid.out", wrap]
    done = slurm.run(argv, check=False, timeout=300, cwd=root, env={"PYTHONPATH": str(REPO)})
    out = (root / "grid.out").read_text() if (root / "grid.out").exists() else done.stderr
    assert done.returncode == 0, out
    assert "6 done stages" in out and "executor local" in out
    assert dvc_status(root) == {}

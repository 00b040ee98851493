"""pipeline.grid on a tiny DVC project (cheap python commands): scheduling, dvc.lock, failures, kills."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from engine.params import ParamsError
from pipeline.grid import Grid, epoch_progress, main
from pipeline.grid.executors import GridSettings, cpu_count, load_grid_settings, plan_slots
from pipeline.grid.slurm import sbatch_script

STEP = """
import json, os, pathlib, sys, time
kind, out = sys.argv[1], sys.argv[2]
if kind == "train":
    n = int(os.environ.get("EPOCHS", "2"))
    for k in range(1, n + 1):
        time.sleep(float(os.environ.get("EPOCH_S", "0.05")))
        print(f"epoch {k}/{n} loss 0.1", flush=True)
if kind == "fail" and not pathlib.Path("ok.flag").exists():
    print("line one\\nsomething went wrong", flush=True)
    sys.exit(3)
if kind == "at":  # wait for the test's signal: the jobs finish together
    pathlib.Path("waiting", out.replace("/", "_")).touch()
    while not pathlib.Path("go").exists():
        time.sleep(0.01)
p = pathlib.Path(out)
p.parent.mkdir(parents=True, exist_ok=True)
env = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "DVC_STAGE", "SLURM_JOB_ID", "SETUP")}
p.write_text(json.dumps({"dice": {"mean": 42.5}, "env": env}) if out.endswith(".json") else kind + out)
"""


def make_project(root: Path, stages: dict, grid: dict | None = None) -> Path:
    """A git + DVC project with ``stages`` (cmds call step.py) and a params.yaml holding only ``grid:``."""
    from dvc.repo import Repo

    root.mkdir(parents=True, exist_ok=True)
    (root / "step.py").write_text(STEP)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump({"grid": {"progress_s": 0.5, **(grid or {})}}))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    Repo.init(str(root)).close()
    return root


def pipeline_stages(names=("a", "b", "c"), flaky: bool = True) -> dict:
    stages = {
        "make": {"cmd": "python step.py make data/x.txt", "deps": ["step.py"], "outs": ["data"]},
        "train": {
            "foreach": list(names),
            "do": {"cmd": "python step.py train runs/${item}.pt", "deps": ["data"], "outs": ["runs/${item}.pt"]},
        },
        "evaluate": {
            "foreach": list(names),
            "do": {
                "cmd": "python step.py eval results/${item}/metrics.json",
                "deps": ["runs/${item}.pt"],
                "outs": [{"results/${item}/metrics.json": {"cache": False}}],  # as dvc.yaml declares it
            },
        },
        "report": {"cmd": "python step.py report report.txt", "deps": ["results"], "outs": ["report.txt"]},
    }
    if flaky:
        stages["flaky"] = {"cmd": "python step.py fail flaky.txt", "deps": ["data"], "outs": ["flaky.txt"]}
        stages["after_flaky"] = {"cmd": "python step.py x after.txt", "deps": ["flaky.txt"], "outs": ["after.txt"]}
    return stages


def run_grid(root: Path, *targets: str, **overrides):
    out = io.StringIO()
    settings = load_grid_settings(root / "params.yaml", overrides)
    outcome = Grid(root, settings, list(targets), out=out, poll_s=0.1).run()
    return outcome, out.getvalue()


def dvc_status(root: Path) -> dict:
    """``dvc status`` of the project, as run from its root."""
    from dvc.repo import Repo

    cwd = os.getcwd()
    os.chdir(root)
    try:
        with Repo(str(root)) as repo:
            return repo.status()
    finally:
        os.chdir(cwd)


def lock_stages(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def ran(outcome) -> list[list[str]]:
    return [c.names for c in outcome.chains if c.status != "cached"]


# ------------------------------------------------------------------------------------------ settings


def test_settings_are_validated_with_the_file_and_key(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("grid:\n  jobs: '4'\n")
    # the grid section is part of the one params schema: validated with every other section
    with pytest.raises(ParamsError, match=r"params.yaml: grid.jobs: expected an integer, got '4'"):
        load_grid_settings(params)
    params.write_text("grid:\n  slurm: {partitoin: gpu}\n")
    with pytest.raises(ParamsError, match=r"grid.slurm.partitoin: unknown key"):
        load_grid_settings(params)
    params.write_text("grid:\n  jobs: 3\n  slurm: {partition: gpu, mem_gb: 32}\n")
    settings = load_grid_settings(params, {"executor": "slurm", "jobs": None})
    assert (settings.jobs, settings.executor, settings.slurm.mem_gb) == (3, "slurm", 32)
    assert load_grid_settings(tmp_path / "absent.yaml") == GridSettings()


def test_slots_share_gpus_round_robin_and_cores_as_threads():
    slots = plan_slots(GridSettings(jobs=4), gpus=[2, 5], cores=16)
    assert [s.gpu for s in slots] == [2, 5, 2, 5] and {s.threads for s in slots} == {4}
    assert [s.gpu for s in plan_slots(GridSettings(), gpus=[0, 1, 2], cores=6)] == [0, 1, 2]
    cpu = plan_slots(GridSettings(jobs=3), gpus=[], cores=8)
    assert [s.gpu for s in cpu] == [None] * 3 and {s.threads for s in cpu} == {2}
    assert plan_slots(GridSettings(gpus="none"), cores=2)[0].describe() == "cpu, 1 thread"


def test_slurm_job_script_is_submitits_sbatch_file(tmp_path):
    settings = GridSettings.model_validate(
        {
            "executor": "slurm",
            "slurm": {
                "partition": "gpu",
                "time_min": 240,
                "gpus_per_job": 1,
                "cpus_per_job": 6,
                "mem_gb": 48,
                "account": "proj1",
                "setup": ["module load cuda/12.4", "source .venv/bin/activate"],
                "sbatch": {"mail-type": "FAIL"},
            },
        }
    )
    script = sbatch_script(settings, tmp_path / "submitit")
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --time=240",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --mem=49152MB",
        "#SBATCH --account=proj1",
        "#SBATCH --mail-type=FAIL",
        "#SBATCH --requeue",  # preempted or timed-out jobs come back
        "#SBATCH --signal=USR2@120",  # ahead of the time limit: the training saves, submitit requeues
        "module load cuda/12.4\nsource .venv/bin/activate",
    ]:
        assert line in script, line
    assert f"{sys.executable} -u -m submitit.core._submit {tmp_path / 'submitit'}" in script


def test_job_states_without_accounting_come_from_squeue():
    from pipeline.grid.slurm import GONE, JobStates

    states = JobStates(delay_s=60)
    states.use_squeue = True
    states.register_job("5")
    states.register_job("6")
    states.register_job("7")
    assert states._make_command()[0] == "squeue"  # the command submitit's watcher runs
    assert set(states.asked) == {"5", "6", "7"}
    info = states.read_info(b"5|RUNNING|n1\n7|REQUEUE_HOLD|n1\n9|COMPLETED|n1\n")
    # a requeued job held in the queue waits; one squeue has forgotten has ended (its result file says how)
    assert {k: info[k]["State"] for k in "567"} == {"5": "RUNNING", "6": GONE, "7": "PENDING"}
    assert info["7"]["SlurmState"] == "REQUEUE_HOLD"
    states._info_dict.update(info)
    assert [states.is_done(j, mode="cache") for j in "567"] == [False, True, False]


def test_a_job_preempted_and_not_requeued_ends_after_the_grace_period():
    """PreemptMode=CANCEL leaves a job PREEMPTED for good (sacct); submitit alone would wait for it forever."""
    from pipeline.grid.slurm import PREEMPTED_GRACE_S, JobStates

    now = [1000.0]
    states = JobStates(delay_s=60)
    states.clock = lambda: now[0]
    for job in "56":
        states.register_job(job)

    def poll(text: str) -> dict:
        info = states.read_info("JobID|State|NodeList\n" + text)
        states._info_dict.update(info)
        return {j: states.is_done(j, mode="cache") for j in "56"}

    assert poll("5|PREEMPTED|n1\n6|PREEMPTED|n1\n") == {"5": False, "6": False}
    now[0] += PREEMPTED_GRACE_S / 2
    assert poll("5|PENDING|\n6|PREEMPTED|n1\n") == {"5": False, "6": False}  # 5 was requeued
    now[0] += PREEMPTED_GRACE_S / 2
    info = states.read_info("JobID|State|NodeList\n5|RUNNING|n1\n6|PREEMPTED|n1\n")
    states._info_dict.update(info)
    assert info["6"]["SlurmState"] == "PREEMPTED"  # what the grid's message names
    assert {j: states.is_done(j, mode="cache") for j in "56"} == {"5": False, "6": True}
    # preempted again later: a new grace period
    now[0] += 10
    assert poll("5|PREEMPTED|n1\n6|PREEMPTED|n1\n")["5"] is False


def test_epoch_and_eta_come_from_the_progress_file_of_the_training(tmp_path):
    from engine.progress import write_progress

    log = tmp_path / "train.log"
    log.write_text("> python -m pipeline.train\n")
    rows = [{"epoch": 1, "seconds": 30.0, "val_dice": 40.0}, {"epoch": 2, "seconds": 10.0, "val_dice": 45.25}]
    started = time.time()
    assert epoch_progress(None, log, started).startswith("running ")
    write_progress(tmp_path, 10, rows, resume_epoch=2, resumed=[])
    # 8 epochs x the mean 20 s
    assert epoch_progress(tmp_path / "progress.json", log, started) == "epoch 2/10, val Dice 45.25 %, ETA 2:40"
    assert epoch_progress(tmp_path / "progress.json", log, started + 60).startswith("running")  # an earlier run's
    write_progress(tmp_path, 10, rows, resume_epoch=2, resumed=[{"from_epoch": 1, "lost_epochs": 3}])
    assert epoch_progress(tmp_path / "progress.json", log, started).endswith("resumed 1x (3 epochs lost)")
    assert epoch_progress(None, tmp_path / "absent.log", None) == "starting"


# ------------------------------------------------------------------------------------- the grid


def test_grid_runs_chains_in_parallel_records_them_and_reports_a_failure(tmp_path):
    root = make_project(tmp_path / "p", pipeline_stages(names=("a", "b")))
    outcome, text = run_grid(root, jobs=2, gpus=[0, 1], exclusive=["report"])

    assert outcome.exit_code == 1
    assert ["train@a", "evaluate@a"] in ran(outcome)  # a train -> evaluate chain is one job
    assert outcome.states["flaky"] == "failed" and outcome.states["after_flaky"] == "blocked"
    assert outcome.states["report"] == "done"
    assert "FAILED flaky (exit status 3)" in text and "something went wrong" in text
    report = next(c for c in outcome.chains if c.names == ["report"])
    others = [c for c in outcome.chains if c is not report]
    assert report.result.stages[0].start >= max(s.end for c in others for s in c.result.stages if s.end)  # alone
    assert report.result.threads == str(cpu_count())  # and with every core, as under `dvc repro`
    assert "42.50" in text  # test Dice column of the summary
    assert set(dvc_status(root)) == {"flaky", "after_flaky"}  # everything else recorded in dvc.lock
    assert "flaky" not in lock_stages(root) and "evaluate@b" in lock_stages(root)
    envs = [json.loads((root / f"results/{n}/metrics.json").read_text())["env"] for n in "ab"]
    assert {e["CUDA_VISIBLE_DEVICES"] for e in envs} <= {"0", "1"} and envs[0]["DVC_STAGE"] == "evaluate@a"
    assert {e["OMP_NUM_THREADS"] for e in envs} == {str(max(1, len(os.sched_getaffinity(0)) // 2))}

    (root / "ok.flag").touch()
    outcome, text = run_grid(root, executor="debug")  # only what is left (in-process executor: faster)
    assert outcome.exit_code == 0, text
    assert ran(outcome) == [["flaky", "after_flaky"]]
    assert dvc_status(root) == {}


@pytest.mark.slow  # several job processes; about 5-15 s
def test_jobs_finishing_together_leave_a_valid_complete_dvc_lock(tmp_path):
    names = [f"s{i}" for i in range(4)]
    stages = {
        "at": {
            "foreach": names,
            "do": {"cmd": "python step.py at out/${item}.txt", "deps": ["at.txt"], "outs": ["out/${item}.txt"]},
        }
    }
    root = make_project(tmp_path / "p", stages)
    (root / "at.txt").write_text("")
    (root / "waiting").mkdir()

    def release():  # once every job waits, let them all go at once
        _wait_for(lambda: len(list((root / "waiting").iterdir())) == len(names), 60)
        (root / "go").touch()

    threading.Thread(target=release, daemon=True).start()
    outcome, text = run_grid(root, jobs=4)
    assert outcome.exit_code == 0, text
    ends = [c.result.stages[0].end for c in outcome.chains]
    assert max(ends) - min(ends) < 0.5  # they did finish together
    assert sorted(lock_stages(root)) == sorted(f"at@{n}" for n in names)
    assert dvc_status(root) == {}


def test_debug_executor_targets_exclude_and_the_run_cache(tmp_path):
    root = make_project(tmp_path / "p", pipeline_stages(names=("a",), flaky=False), grid={"exclude": ["report"]})
    outcome, text = run_grid(root, "evaluate@a", executor="debug")
    assert outcome.exit_code == 0, text
    assert ran(outcome) == [["make", "train@a", "evaluate@a"]]  # a linear pipeline is one job
    assert set(dvc_status(root)) == {"report"}  # excluded: left to dvc repro

    (root / "runs/a.pt").unlink()  # an output lost: restored from DVC's run cache, not rerun
    outcome, text = run_grid(root)
    assert [c.status for c in outcome.chains] == ["cached"] and outcome.states["evaluate@a"] == "up to date"
    assert set(dvc_status(root)) == {"report"}


def test_a_checkpoints_evaluate_and_transfers_join_its_training_job(tmp_path):
    """train@a has two next stages that need nothing else (its evaluate and a transfer, once `other` is done): one
    job runs all three; `make`, followed by two trainings that could each start a job, stays alone."""
    other = {"cmd": "python step.py make other/x.txt", "deps": ["step.py"], "outs": ["other"]}  # runs first
    stages = {"other": other, **pipeline_stages(names=("a", "b"), flaky=False)}
    stages["transfer"] = {
        "foreach": ["a", "b"],
        "do": {
            "cmd": "python step.py eval results/transfer/${item}/metrics.json",
            "deps": ["runs/${item}.pt", "other"],
            "outs": [{"results/transfer/${item}/metrics.json": {"cache": False}}],
        },
    }
    root = make_project(tmp_path / "p", stages)
    outcome, text = run_grid(root, executor="debug")
    assert outcome.exit_code == 0, text
    jobs = ran(outcome)
    assert ["train@a", "evaluate@a", "transfer@a"] in jobs and ["train@b", "evaluate@b", "transfer@b"] in jobs
    assert ["make"] in jobs and ["report"] in jobs
    assert dvc_status(root) == {}


def _sized_inputs_project(root: Path, sizes: dict[str, int]) -> Path:
    stages = {
        "train": {
            "foreach": list(sizes),
            "do": {"cmd": "python step.py train runs/${item}.pt", "deps": ["in/${item}"], "outs": ["runs/${item}.pt"]},
        },
        "evaluate": {
            "foreach": list(sizes),
            "do": {
                "cmd": "python step.py eval res/${item}.json",
                "deps": ["runs/${item}.pt"],
                "outs": ["res/${item}.json"],
            },
        },
    }
    make_project(root, stages)
    for name, size in sizes.items():
        (root / "in" / name).mkdir(parents=True)
        (root / "in" / name / "data.bin").write_bytes(b"x" * size)
    return root


def test_longest_jobs_start_first_by_earlier_wall_time_else_input_size(tmp_path):
    sizes = {"a": 10, "b": 1000, "c": 100}
    root = _sized_inputs_project(tmp_path / "p", sizes)
    outcome, text = run_grid(root, executor="debug")  # one job at a time, in the queue's order
    assert outcome.exit_code == 0, text
    assert [c.names[0] for c in outcome.chains] == ["train@b", "train@c", "train@a"]  # never timed: by input size

    root = _sized_inputs_project(tmp_path / "q", sizes)
    earlier = root / ".dvc/tmp/grid/runs/20000101-000000-1"
    earlier.mkdir(parents=True)
    runs = [
        {"stages": [f"train@{n}", f"evaluate@{n}"], "status": "done", "seconds": t}
        for n, t in zip("abc", (50, 1, 9), strict=True)
    ]
    (earlier / "summary.json").write_text(json.dumps({"runs": runs}))
    outcome, text = run_grid(root, executor="debug")
    assert [c.names[0] for c in outcome.chains] == ["train@a", "train@c", "train@b"]  # by the earlier grid's times


def test_a_fresh_clone_ignores_the_seconds_another_machine_recorded(tmp_path):
    """No earlier grid, but the committed train.json of each run: times from the machine that made them, which may
    order the models otherwise than this one (issue 34); without an estimate, the size of the inputs orders."""
    root = make_project(
        tmp_path / "p",
        {
            "train": {
                "foreach": ["a", "b", "c"],
                "do": {
                    "cmd": "python step.py train runs/${item}/train.json",
                    "deps": ["in/${item}"],
                    "outs": [{"runs/${item}/train.json": {"cache": False}}],
                },
            }
        },
    )
    for name, size, seconds in (("a", 10, 50.0), ("b", 1000, 1.0), ("c", 100, 9.0)):
        (root / "in" / name).mkdir(parents=True)
        (root / "in" / name / "data.bin").write_bytes(b"x" * size)
        (root / "runs" / name).mkdir(parents=True)
        (root / "runs" / name / "train.json").write_text(json.dumps({"seconds": seconds}))
    outcome, text = run_grid(root, executor="debug")
    assert outcome.exit_code == 0, text
    assert [c.names[0] for c in outcome.chains] == ["train@b", "train@c", "train@a"]


# A stand-in for SLURM's sbatch, srun, sacct and scancel: jobs run on this machine, in the background.
FAKE_SBATCH = """
import os, pathlib, re, subprocess, sys
d = pathlib.Path(os.environ["FAKE_SLURM"]); d.mkdir(exist_ok=True)
script = sys.argv[-1]
job = str(1000 + len(list(d.glob("*.job"))))
(d / f"{job}.job").write_text(script)
out = re.search(r"#SBATCH --output=(\\S+)", open(script).read()).group(1).replace("%j", job)
env = dict(os.environ, SLURM_JOB_ID=job, SLURM_JOB_NUM_NODES="1", SLURM_JOB_NODELIST="localhost")
with open(out, "a") as log:
    subprocess.Popen(["bash", "-c", f"bash {script}; echo $? > {d}/{job}.rc"], env=env, stdout=log,
                     stderr=subprocess.STDOUT, start_new_session=True)
print(f"Submitted batch job {job}")
"""
FAKE_SRUN = """
import os, subprocess, sys
args, out = sys.argv[1:], None
while args and args[0].startswith("--"):
    flag = args.pop(0)
    if flag == "--output":
        out = args.pop(0)
job = os.environ["SLURM_JOB_ID"]
env = dict(os.environ, SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NTASKS="1", SLURM_NODEID="0")
with open(out.replace("%j", job).replace("%t", "0"), "a") as log:
    sys.exit(subprocess.call(args, env=env, stdout=log, stderr=subprocess.STDOUT))
"""
FAKE_SACCT = """
import os, pathlib, sys
d = pathlib.Path(os.environ["FAKE_SLURM"])
print("JobID|State|NodeList")
for i, arg in enumerate(sys.argv):
    if arg == "-j":
        rc = d / f"{sys.argv[i + 1]}.rc"
        state = "RUNNING" if not rc.exists() else "COMPLETED" if rc.read_text().strip() == "0" else "FAILED"
        print(f"{sys.argv[i + 1]}|{state}|localhost")
"""


@pytest.mark.slow
def test_slurm_executor_submits_the_same_jobs(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, code in [("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("sacct", FAKE_SACCT), ("scancel", "")]:
        (bindir / name).write_text(f"#!{sys.executable}\n{code}")
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(tmp_path / "slurm"))
    grid = {"executor": "slurm", "slurm": {"partition": "gpu", "cpus_per_job": 3, "setup": ["export SETUP=yes"]}}
    root = make_project(tmp_path / "p", pipeline_stages(names=("a", "b"), flaky=False), grid=grid)
    outcome, text = run_grid(root, jobs=2)
    assert outcome.exit_code == 0, text
    assert "slurm job 100" in text and len(list((tmp_path / "slurm").glob("*.job"))) == len(outcome.chains)
    env = json.loads((root / "results/b/metrics.json").read_text())["env"]
    assert env["SETUP"] == "yes" and env["SLURM_JOB_ID"].startswith("100") and env["OMP_NUM_THREADS"] == "3"
    assert dvc_status(root) == {}


def _grid_process(root: Path, env_extra: dict) -> subprocess.Popen:
    env = {**os.environ, **env_extra}
    cmd = [sys.executable, "-m", "pipeline.grid", "--jobs", "2", "--progress-s", "100"]
    return subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _stage_processes(root: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if p.info["cwd"] == str(root) and "step.py" in " ".join(p.info["cmdline"] or []):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def _training(root: Path) -> bool:
    return any("epoch 1/" in p.read_text() for p in root.glob(".dvc/tmp/grid/runs/*/logs/train@*.log"))


@pytest.mark.slow  # several job processes; about 5-15 s
def test_killed_grid_records_nothing_half_done_and_the_next_run_resumes(tmp_path):
    root = make_project(tmp_path / "p", pipeline_stages(names=("a", "b"), flaky=False), grid={"orphan_timeout_s": 2})
    proc = _grid_process(root, {"EPOCHS": "100", "EPOCH_S": "0.2"})
    try:
        assert _wait_for(lambda: _training(root), 30), "training never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert list(lock_stages(root)) == ["make"]  # the finished stage, nothing of the killed runs
        # the orphaned jobs notice the stopped heartbeat and end their commands
        assert _wait_for(lambda: not _stage_processes(root), 60), _stage_processes(root)
    finally:
        if proc.poll() is None:
            proc.kill()
    outcome, text = run_grid(root, executor="debug")
    assert outcome.exit_code == 0, text
    assert outcome.states["make"] == "up to date" and outcome.states["train@a"] == "done"
    assert dvc_status(root) == {}


@pytest.mark.slow  # several job processes; about 5-15 s
def test_ctrl_c_cancels_the_jobs_and_exits_130(tmp_path):
    root = make_project(tmp_path / "p", pipeline_stages(names=("a", "b"), flaky=False))
    proc = _grid_process(root, {"EPOCHS": "100", "EPOCH_S": "0.2"})
    try:
        assert _wait_for(lambda: _training(root), 30), "training never started"
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "interrupted" in out
    assert list(lock_stages(root)) == ["make"]
    assert _wait_for(lambda: not _stage_processes(root), 60)


def test_a_commit_cut_short_is_rolled_back_and_redone(tmp_path):
    root = make_project(tmp_path / "p", pipeline_stages(names=("a",), flaky=False))
    assert run_grid(root, "make", executor="debug")[0].exit_code == 0
    before = (root / "dvc.lock").read_text()
    assert run_grid(root, executor="debug")[0].exit_code == 0
    full = (root / "dvc.lock").read_text()
    # what a kill -9 in the middle of DVC's in-place write of dvc.lock leaves behind
    grid_dir = root / ".dvc/tmp/grid"
    (grid_dir / "dvc.lock.before").write_text(before)
    pending = ["train@a", "evaluate@a", "report"]
    (grid_dir / "commit.json").write_text(json.dumps({"stages": pending, "had_lock": True}))
    (root / "dvc.lock").write_text(full[: len(full) // 2])

    outcome, text = run_grid(root)
    assert "recording again" in text
    assert outcome.exit_code == 0 and ran(outcome) == []  # recorded again, nothing rerun
    assert sorted(lock_stages(root)) == sorted(["make", *pending])
    assert dvc_status(root) == {} and not (grid_dir / "commit.json").exists()


def test_command_line_errors(tmp_path, capsys):
    from core.cli import run

    root = make_project(tmp_path / "p", pipeline_stages(names=("a",), flaky=False))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert run(main, ["nosuchstage"]) == 2
        assert "matches no stage" in capsys.readouterr().err
        assert run(main, ["--dry-run", "--jobs", "3"]) == 0
        assert "3 jobs" in capsys.readouterr().out
    finally:
        os.chdir(cwd)


def test_a_cpu_grid_shares_the_cores_out_among_the_jobs_ready_together(tmp_path, monkeypatch):
    import pipeline.grid
    import pipeline.grid.executors
    import pipeline.grid.lifecycle

    monkeypatch.setattr(pipeline.grid.executors, "cpu_count", lambda: 6)
    monkeypatch.setattr(pipeline.grid.lifecycle, "cpu_count", lambda: 6)
    stages = pipeline_stages(names=("a", "b", "c"), flaky=False)
    stages["latency"] = {"cmd": "python step.py x lat.txt", "deps": ["data"], "outs": ["lat.txt"]}
    root = make_project(tmp_path / "p", stages)
    outcome, text = run_grid(root, gpus="none", exclusive=["latency"])
    assert outcome.exit_code == 0, text
    assert "up to 6 jobs on the cpu" in text
    threads = {c.names[0]: c.result.threads for c in outcome.chains}
    assert threads["make"] == "6"  # alone: every core
    # three ready at once: two cores each (the exclusive latency stage, queued too, runs alone afterwards)
    assert [threads[f"train@{n}"] for n in "abc"] == ["2", "2", "2"]
    assert threads["latency"] == "6"
    envs = [json.loads((root / f"results/{n}/metrics.json").read_text())["env"] for n in "abc"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"2"}

    root = make_project(tmp_path / "q", pipeline_stages(names=("a", "b", "c"), flaky=False))
    outcome, text = run_grid(root, gpus="none", jobs=6)  # jobs given: one thread each, as asked
    assert {c.result.threads for c in outcome.chains} == {"1"}


def test_a_failing_nvidia_smi_is_one_warning_naming_the_error_and_grid_gpus(tmp_path, monkeypatch, capsys):
    from pipeline.grid.executors import detect_gpus

    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert detect_gpus() == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "nvidia-smi failed" in err[0] and "exit status 9" in err[0] and "could not communicate" in err[0]
    assert "grid.gpus" in err[0]
    smi.write_text("#!/bin/sh\necho 0\necho 1\n")  # a working one: no warning
    assert detect_gpus() == [0, 1] and capsys.readouterr().err == ""

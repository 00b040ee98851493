"""Issue 34: the cores of a finished job go to the jobs still running, trainings follow their thread budget at
epoch boundaries, and the queue is ordered by estimates measured on this machine."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from test_grid import make_project, run_grid
from test_train import TINY_MODEL, tiny_config

import engine.threads as threads_mod
import pipeline.grid.estimate as estimate_mod
from engine.checkpoint import load_checkpoint
from engine.params import GridSettings
from engine.threads import THREADS_FILE_ENV, ThreadBudget, read_budget
from pipeline.grid.dvc_adapter import StageInfo
from pipeline.grid.dvcrepo import Plan
from pipeline.grid.estimate import StepTimer, probe_key, train_args, training_of
from pipeline.grid.executors import plan_slots
from pipeline.grid.jobs import ChainResult, StageResult
from pipeline.grid.monitor import Monitor, estimate_error
from pipeline.grid.scheduler import Chain, Scheduler
from pipeline.train import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------ the thread budget


def test_the_budget_file_is_read_at_epoch_boundaries_applied_and_recorded(tmp_path, monkeypatch, keep_threads):
    monkeypatch.delenv(THREADS_FILE_ENV, raising=False)
    none = ThreadBudget()
    assert none.follow(0) is None and none.record() == {}  # a training run by hand: nothing changes

    torch.set_num_threads(1)
    budget = tmp_path / "b.txt"
    budget.write_text("1\n")
    monkeypatch.setenv(THREADS_FILE_ENV, str(budget))
    follower = ThreadBudget()
    assert follower.follow(0) is None  # the budget it started with
    budget.write_text("2\n")
    assert follower.follow(1) == 2 and torch.get_num_threads() == 2
    assert follower.follow(2) is None
    budget.write_text("oops")  # unreadable: kept as it is
    assert follower.follow(3) is None and torch.get_num_threads() == 2
    assert follower.record() == {"threads": [{"from_epoch": 1, "threads": 1}, {"from_epoch": 2, "threads": 2}]}
    assert read_budget(tmp_path / "absent") is None and read_budget(budget) is None


def _train_with_switch(data: Path, out: Path, monkeypatch, switch_at: int | None) -> Path:
    """Train the tiny model 3 epochs at one thread, to two threads from epoch ``switch_at`` + 1 (the grid's lending,
    written just before that epoch); returns a copy of best.pt after epoch 1."""
    budget = out.parent / f"{out.name}.budget"
    budget.write_text("1")
    torch.set_num_threads(1)
    monkeypatch.setenv(THREADS_FILE_ENV, str(budget))
    after_first = out.parent / f"{out.name}-epoch1.pt"
    follow = ThreadBudget.follow

    def lending_follow(self, epoch):
        if epoch == 1:
            shutil.copy(out / "best.pt", after_first)  # epoch 1 always improves on nothing: its weights
        if epoch == switch_at:
            budget.write_text("2")
        return follow(self, epoch)

    monkeypatch.setattr(threads_mod.ThreadBudget, "follow", lending_follow)
    train(tiny_config(data, out, selection="last", model_kwargs=TINY_MODEL))
    monkeypatch.setattr(threads_mod.ThreadBudget, "follow", follow)
    return after_first


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_training_takes_more_threads_only_between_epochs_and_records_it(
    make_prepared, tmp_path, monkeypatch, keep_threads
):
    """A thread change can alter the last bits of the weights, as starting with another thread count does
    (engine/threads.py gives the measurement). What holds: the change happens only at an epoch boundary, the same
    thread schedule gives the same weights bit for bit, and train.json records the schedule."""
    data = make_prepared(tmp_path / "noval", empty_val=True)  # best.pt: the last epoch's weights
    one = _train_with_switch(data, tmp_path / "one", monkeypatch, None)
    lent = _train_with_switch(data, tmp_path / "lent", monkeypatch, 1)
    _train_with_switch(data, tmp_path / "again", monkeypatch, 1)
    assert _same(_weights(one), _weights(lent))  # epoch 1 ran at one thread in both
    assert _same(_weights(tmp_path / "lent/best.pt"), _weights(tmp_path / "again/best.pt"))
    assert json.loads((tmp_path / "one/train.json").read_text())["threads"] == [{"from_epoch": 1, "threads": 1}]
    recorded = json.loads((tmp_path / "lent/train.json").read_text())["threads"]
    assert recorded == [{"from_epoch": 1, "threads": 1}, {"from_epoch": 2, "threads": 2}]


# ------------------------------------------------------------------------------------ lending cores


BUDGET_STEP = """
import json, os, pathlib, sys, time
kind, out = sys.argv[1], pathlib.Path(sys.argv[2])
seen = []
if kind == "long":  # a training: reads its budget (between epochs) until the grid lends it the second core
    path = pathlib.Path(os.environ["DYGLBENCH_THREADS_FILE"])
    deadline = time.time() + 60
    while time.time() < deadline and (not seen or seen[-1] != "2"):
        value = path.read_text().strip()
        if not seen or seen[-1] != value:
            seen.append(value)
        time.sleep(0.05)
else:
    time.sleep(0.5)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps({"budgets": seen, "omp": os.environ.get("OMP_NUM_THREADS")}))
"""


def test_a_job_that_ends_gives_its_core_to_the_running_one(tmp_path, monkeypatch):
    import pipeline.grid.executors

    monkeypatch.setattr(pipeline.grid.executors, "cpu_count", lambda: 2)
    stages = {
        "long": {"cmd": "python budget.py long out/long.json", "deps": ["budget.py"], "outs": ["out/long.json"]},
        "short": {"cmd": "python budget.py short out/short.json", "deps": ["budget.py"], "outs": ["out/short.json"]},
    }
    root = make_project(tmp_path / "p", stages)
    (root / "budget.py").write_text(BUDGET_STEP)
    outcome, text = run_grid(root, gpus="none")
    assert outcome.exit_code == 0, text
    seen = json.loads((root / "out/long.json").read_text())
    assert seen == {"budgets": ["1", "2"], "omp": "1"}, text  # started on one core, then had both
    long = next(c for c in outcome.chains if c.names == ["long"])
    assert [t for _, t in long.threads_log] == [1, 2] and "1->2 threads" in long.where

    # threads per job fixed by the user: nothing is lent
    root = make_project(tmp_path / "q", {"short": stages["short"]})
    (root / "budget.py").write_text(BUDGET_STEP)
    outcome, text = run_grid(root, gpus="none", threads_per_job=1)
    assert outcome.exit_code == 0 and not outcome.chains[0].threads_log


def _chain(name: str, estimate: float | None = None) -> Chain:
    return Chain(stages=[StageInfo(name)], logs=[], estimate=estimate)


def _scheduler(tmp_path, cores: int, estimator=None, **settings) -> Scheduler:
    cfg = GridSettings(gpus="none", **settings)
    plan = Plan(steps=[], upstream={}, downstream={})
    slots = plan_slots(cfg, gpus=[], cores=cores)
    return Scheduler(plan, None, cfg, slots, tmp_path, lambda msg: None, estimator=estimator)  # type: ignore[arg-type]


def test_lent_cores_go_to_the_job_with_fewest_threads_and_come_back_for_a_waiting_job(tmp_path):
    sched = _scheduler(tmp_path, cores=4)
    a, b, c = _chain("a", 10.0), _chain("b", 100.0), _chain("c")
    sched.queue.extend([a, b, c])
    running = []
    while (chain := sched.next_chain(running)) is not None:
        sched.place(chain)
        running.append(chain)
    assert [x.threads for x in running] == [1, 1, 2]  # 4 cores, 3 jobs: the last one ready takes what is left
    sched.release(c)
    running.remove(c)
    assert sorted(x.threads for x in sched.lend(running)) == [2, 2]
    assert (a.threads, b.threads) == (2, 2) and not sched.free
    sched.queue.append(_chain("d"))  # a new job waits: one lent core comes back
    assert sched.reclaim(running) and len(sched.free) == 1 and a.threads + b.threads == 3
    assert sched.lend(running) == []  # something waits: nothing lent

    fixed = _scheduler(tmp_path, cores=2, threads_per_job=1)
    x = _chain("x")
    fixed.queue.append(x)
    fixed.place(fixed.next_chain([]))
    assert fixed.lend([x]) == [] and x.threads == 1


def test_an_exclusive_job_waiting_for_every_core_does_not_keep_a_freed_core_idle(tmp_path):
    """The default run's last training ran alone on one core while the complexity stages (exclusive: latency) waited
    for both: a waiting exclusive job cannot start before the running ones end, so the freed core is lent."""
    sched = _scheduler(tmp_path, cores=2, exclusive=["complexity@*"])
    train_a, train_b, latency = _chain("train@a", 100.0), _chain("train@b", 50.0), _chain("complexity@a")
    sched.queue.extend([train_a, train_b])
    running = []
    while (chain := sched.next_chain(running)) is not None:
        sched.place(chain)
        running.append(chain)
    sched.queue.append(latency)
    sched.release(train_b)
    running.remove(train_b)
    assert sched.next_chain(running) is None  # the exclusive job waits for train@a
    assert sched.lend(running) == [train_a] and train_a.threads == 2
    sched.release(train_a)
    running.remove(train_a)
    assert sched.next_chain(running) is latency  # every core back: it runs alone
    assert sched.place(latency) is not None and len(sched.free) == 1


# ------------------------------------------------------------------------------------ ordering


class FakeEstimator:
    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds

    def estimate(self, stages):
        return [self.seconds.get(s.name) for s in stages]


def test_the_queue_puts_the_longest_estimate_first(tmp_path):
    estimates = {"train@dyglnet": 425.0, "train@attention_unet": 808.0, "train@unet": 615.0, "train@unetpp": 411.0}
    sched = _scheduler(tmp_path, cores=2, estimator=FakeEstimator(estimates))
    sched.enqueue([_chain(n) for n in estimates])
    assert [c.names[0] for c in sched.queue] == ["train@attention_unet", "train@unet", "train@dyglnet", "train@unetpp"]
    assert sched.queue[0].estimate == 808.0


def _training_stage(root: Path, model: str, n_train: int = 40, n_val: int = 8) -> StageInfo:
    data = root / "data/prepared/tiny"
    data.mkdir(parents=True, exist_ok=True)
    split = {"train": [f"t{i}" for i in range(n_train)], "val": [f"v{i}" for i in range(n_val)], "test": []}
    (data / "split.json").write_text(json.dumps(split))
    cmd = f"python -m pipeline.train --data data/prepared/tiny --model {model} --seed 1 --out runs/{model}"
    return StageInfo(f"train@{model}", cmds=(cmd,), wdir=str(root))


def _params(root: Path, **train) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    if "epochs" in train:  # a budget in epochs instead of the profile's steps
        params["train"].pop("steps", None)
    params["train"].update(train)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_a_cached_estimate_is_reused_and_the_cache_key_follows_the_machine(tmp_path, monkeypatch):
    monkeypatch.setenv(estimate_mod.CACHE_ENV, str(tmp_path / "cache"))
    _params(tmp_path, epochs=3, batch_size=8)
    stages = [_training_stage(tmp_path, m) for m in ("unet", "unetpp")] + [StageInfo("report", cmds=("echo",))]
    probed: list[str] = []

    def fake_probes(cfgs):
        probed.extend(c["model"] for c in cfgs)
        per_step = {"unet": 0.5, "unetpp": 0.25}
        return [{"seconds_per_step": per_step[c["model"]], "startup_seconds": 2.0} for c in cfgs]

    timer = StepTimer(cores=2, say=lambda msg: None)
    timer.run_probes = fake_probes
    # start-up, then 40 images / batch 8 = 5 steps x 3 epochs, and 1 validation batch per epoch at a third of a step
    assert timer.estimate(stages) == [pytest.approx(2 + 0.5 * (15 + 3 / 3)), pytest.approx(2 + 0.25 * 16), None]
    assert sorted(probed) == ["unet", "unetpp"]
    assert StepTimer(cores=2, say=lambda msg: None).estimate(stages[:1])[0] == pytest.approx(10.0)  # cached
    timer.estimate(stages)
    assert len(probed) == 2  # nothing measured again

    monkeypatch.setattr(estimate_mod, "cpu_model", lambda: ("Another CPU", True))
    other = StepTimer(cores=2, say=lambda msg: None)
    other.run_probes = fake_probes
    other.estimate(stages)
    assert sorted(probed) == ["unet", "unet", "unetpp", "unetpp"]  # another machine: measured anew
    cfg = training_of(stages[0]).cfg
    assert probe_key(cfg, {"cpu": "A"}) != probe_key(cfg, {"cpu": "B"})
    assert probe_key(cfg, {"cpu": "A"}) != probe_key({**cfg, "batch_size": 4}, {"cpu": "A"})
    assert probe_key(cfg, {"cpu": "A"}) == probe_key({**cfg, "epochs": 99, "seed": 3}, {"cpu": "A"})


def test_train_args_read_the_training_command():
    cmd = "python -m pipeline.train --data d --model unet --seed 42 --out r --batch-size 4 --no-compile --sync-bn"
    assert train_args((cmd,)) == {
        "data": "d",
        "model": "unet",
        "seed": 42,
        "out": "r",
        "batch_size": 4,
        "compile": False,
        "sync_bn": True,
    }
    assert train_args(("python -m pipeline.evaluate --data d --checkpoint c --out o",)) is None


def test_the_probe_times_real_optimiser_steps_of_the_model(tmp_path, monkeypatch):
    """One real probe (a subprocess at one thread), on the tiny DyGLNet."""
    monkeypatch.setenv(estimate_mod.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    cfg = tiny_config(tmp_path / "data", tmp_path / "out", batch_size=2, img_size=32).model_dump()
    said: list[str] = []
    [measured] = StepTimer(cores=1, say=said.append).run_probes([cfg])
    assert measured is not None, said
    assert 0 < measured["seconds_per_step"] < 30 and 0 < measured["startup_seconds"] < 300


def test_the_summary_shows_each_estimate_beside_its_time_and_the_error():
    def done(name: str, estimate: float, real: float, threads: list[int]) -> Chain:
        chain = _chain(name, estimate)
        chain.status = "done"
        chain.result = ChainResult("h", None, "1", [StageResult(name, 0, 100.0, 100.0 + real)])
        chain.threads_log = [(0.0, t) for t in threads]
        return chain

    chains = [done("a", 90.0, 100.0, [1]), done("b", 330.0, 300.0, [1]), done("c", 10.0, 50.0, [1, 2])]
    err = estimate_error(chains)
    assert err == (pytest.approx((0.1 + 0.1) / 2), 2)  # c changed threads: its time is no one-thread time
    out = io.StringIO()
    Monitor(out, 0.0).table(chains)
    text = out.getvalue()
    assert "estimate (1 thread)" in text and "1:30" in text and "1:40" in text
    assert "estimates: mean error 10 % of the training's time (2 one-thread runs)" in text


# ------------------------------------------------------------------------------------ measuring idle cores


def test_the_timeline_finds_a_freed_core_idle_until_the_trainings_next_epoch(tmp_path):
    """Two trainings on two cores; b ends at t=100 and a takes its core at its next epoch boundary (t=110)."""
    from pipeline.tools.grid_timeline import analyse

    run = tmp_path / ".dvc/tmp/grid/runs/20260101-000000-1"
    (run / "jobs").mkdir(parents=True)
    summary = {"runs": []}
    for name, start, end in (("train@d-a-42", 0.0, 200.0), ("train@d-b-42", 0.0, 100.0)):
        (run / "jobs" / f"{name}.json").write_text(
            json.dumps({"attempts": [{"start": start, "end": end}], "stages": {name: {"start": start, "end": end}}})
        )
        summary["runs"].append({"stages": [name], "where": "vm cpu, 1 thread", "threads_log": [[start, 1]]})
    (run / "summary.json").write_text(json.dumps(summary))
    folder = tmp_path / "runs/d/a/seed42"
    folder.mkdir(parents=True)
    # ten epochs of 20 s ending at t=200: epoch 6 starts at t=100... the budget applies from epoch 7 (t=120)
    (folder / "log.csv").write_text("epoch,seconds\n" + "".join(f"{i},20.0\n" for i in range(1, 11)))
    (folder / "train.json").write_text(
        json.dumps({"threads": [{"from_epoch": 1, "threads": 1}, {"from_epoch": 7, "threads": 2}]})
    )
    found = analyse(tmp_path, cores=2)
    (period,) = found["periods"]
    assert (period["start"], period["end"], period["idle_cores"]) == (100.0, 120.0, 1)
    assert period["epochs"] == 1.0 and found["longest_idle_with_a_training_running_epochs"] == 1.0
    assert found["idle_core_seconds"] == 20.0

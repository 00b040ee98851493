"""The training engine: recipe, outputs, divergence, resumption and preemption, user errors, torchrun."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import engine.recipe
import pipeline.train as train_mod
from core.errors import UserError
from engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from engine.params import AugmentParams, TrainConfig
from engine.recipe import warmup_poly_factor
from engine.resume import run_fingerprint
from pipeline.train import NonFiniteError, train

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"depths": [1, 1, 1]}
NO_AUGMENT = {
    "crop_scale": [1.0, 1.0],
    "crop_ratio": [1.0, 1.0],
    "hflip_p": 0.0,
    "vflip_p": 0.0,
    "rotate_p": 0.0,
    "elastic_p": 0.0,
    "brightness_contrast_p": 0.0,
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it), for torchrun's rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        model="dyglnet",
        out=str(out),
        epochs=3,
        batch_size=8,
        img_size=32,
        seed=7,
        warmup_epochs=1,
        reference_epochs=3,
        num_workers=0,
        checkpoint_every=1,
        model_kwargs=TINY_MODEL,
    )
    return TrainConfig(**{**base, **kw})


def read_log(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def same_weights(a: Path, b: Path) -> None:
    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert wa.keys() == wb.keys()
    for key, tensor in wa.items():
        assert torch.equal(tensor, wb[key]), key


def stop_after_epoch(monkeypatch, epochs_done: int) -> None:
    """Make the run raise KeyboardInterrupt right after the log of epoch `epochs_done` is written."""
    real = train_mod.write_log

    def write_then_stop(path, rows):
        real(path, rows)
        if len(rows) == epochs_done:
            raise KeyboardInterrupt(f"simulated kill after epoch {epochs_done}")

    monkeypatch.setattr(train_mod, "write_log", write_then_stop)


def test_autocast_dtype_follows_device_and_amp():
    from engine.runtime import autocast_dtype

    assert autocast_dtype(torch.device("cuda"), True) == torch.float16
    assert autocast_dtype(torch.device("cuda"), False) is None
    assert autocast_dtype(torch.device("cpu"), False) is None
    expected = torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    assert autocast_dtype(torch.device("cpu"), True) == expected


def test_schedule_warms_up_then_decays_to_zero():
    total, warm = 100, 10
    factors = [warmup_poly_factor(s, total, warm, 0.9) for s in range(total)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert warmup_poly_factor(total, total, warm, 0.9) == 0.0


def test_run_writes_small_best_checkpoint_percent_log_and_summary(tiny_prepared, tmp_path):
    out = tmp_path / "run"
    summary = train(tiny_config(tiny_prepared, out))
    rows = read_log(out / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == train_mod.LOG_COLUMNS
    assert float(rows[-1]["lr"]) == pytest.approx(0.0, abs=1e-12)  # poly decay ends at zero
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "log.csv", "train.json"]  # resume.pt deleted

    best = load_checkpoint(out / "best.pt")
    assert set(best) == {"format", "kind", "model", "config", "epoch", "best_val_dice"}  # no optimiser state
    assert best["kind"] == "model" and all(v.dtype != torch.float16 for v in best["model"].values())
    val = [float(r["val_dice"]) for r in rows]
    assert best["best_val_dice"] == max(val) and best["epoch"] == val.index(max(val)) + 1
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in best["model"])

    written = json.loads((out / "train.json").read_text())
    assert written == summary
    assert summary["best_val_dice"] == max(val) and summary["selection"] == "best_val_dice"
    assert summary["steps"] == 3 * 2 and summary["img_size"] == 32 and summary["batch_size"] == 8
    assert summary["epochs"] == 3 and summary["images_per_second"] > 0 and summary["device_name"]
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # amp on the CPU: bf16 where the CPU has it
    assert summary["precision"] == ("bf16-amp" if bf16 else "fp32")
    assert best["model"] and all(v.dtype in (torch.float32, torch.int64) for v in best["model"].values())
    # Dice in percent: the training Dice of a model that predicts discs is far above 1 (a fraction would be <= 1)
    assert max(float(r["train_dice"]) for r in rows) > 1.0
    assert all(0.0 <= float(r["val_dice"]) <= 100.0 for r in rows)


@pytest.mark.slow
def test_resume_after_interrupt_matches_uninterrupted_run(tiny_prepared, tmp_path, monkeypatch):
    """Killed after epoch 2, best.pt deleted, continued without any flag and with persistent workers instead
    of none: the same best.pt and the same log (each sample's augmentation depends on (seed, epoch, sample)
    only; resume.pt carries the best epoch's weights)."""
    full = tmp_path / "full"
    train(tiny_config(tiny_prepared, full, num_workers=0))

    killed = tmp_path / "killed"
    stop_after_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_prepared, killed, num_workers=1))
    monkeypatch.undo()
    assert load_checkpoint(killed / "resume.pt")["epoch"] == 2
    (killed / "best.pt").unlink()  # as `dvc repro` does before it reruns a stage
    train(tiny_config(tiny_prepared, killed, num_workers=1))

    same_weights(full / "best.pt", killed / "best.pt")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in read_log(full / "log.csv")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in read_log(killed / "log.csv")]
    assert not (killed / "resume.pt").exists()


def _params_file(folder: Path, **train_overrides) -> None:
    params = {
        "train": {
            "epochs": 3,
            "batch_size": 8,
            "img_size": 32,
            "warmup_epochs": 1,
            "reference_epochs": 3,
            "num_workers": 0,
            "device": "cpu",
            "checkpoint_every": 1,
            **train_overrides,
        },
        "augment": NO_AUGMENT,
        "models": {
            "dyglnet": {"model_kwargs": TINY_MODEL},
            "tiny_run": {"model": "dyglnet", "model_kwargs": TINY_MODEL},
        },
    }
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_matches_uninterrupted_run(tmp_path, make_prepared, monkeypatch):
    """A training process killed with SIGKILL after it wrote resume.pt; the same command again continues
    from it and ends with best.pt bit-identical to an uninterrupted run's (CPU, no workers, selection
    last: best.pt is the last epoch). A temporary file planted as if a checkpoint write had been killed
    is removed and trips nothing. The epochs trained after resume.pt and lost are recorded in train.json."""
    data = make_prepared(tmp_path / "noval", empty_val=True)
    _params_file(tmp_path, epochs=4, checkpoint_every=2)  # resume.pt after epoch 2
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "pipeline.train", "--data", str(data), "--model", "dyglnet", "--out", str(out)]
    cmd += ["--seed", "3"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "resume.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no resume.pt within 300 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    epochs_done = load_checkpoint(out / "resume.pt")["epoch"]
    assert epochs_done == 2
    # progress.json is written after resume.pt: epoch 1 if the kill came between the two, 3 if epoch 3 ended before
    reached = max(2, json.loads((out / "progress.json").read_text())["epoch"])
    (out / ".resume.pt.x1y2z3.tmp").write_bytes(b"half a checkpoint")
    (out / ".best.pt.a1b2c3.tmp").write_bytes(b"half a checkpoint")

    rerun = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming {out} from resume.pt after epoch {epochs_done} of 4" in rerun.stdout
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "log.csv", "train.json"]  # progress.json gone
    (resumed,) = json.loads((out / "train.json").read_text())["resumed"]
    assert (resumed["from_epoch"], resumed["lost_epochs"]) == (2, reached - 2)

    _uninterrupted(tmp_path, data, monkeypatch)
    same_weights(tmp_path / "full" / "best.pt", out / "best.pt")
    assert load_checkpoint(out / "best.pt")["epoch"] == 4
    assert len(read_log(out / "log.csv")) == 4


def _uninterrupted(folder: Path, data: Path, monkeypatch) -> None:
    """FOLDER/full: the run of FOLDER/params.yaml (seed 3) in this process, on one thread as the subprocesses."""
    monkeypatch.chdir(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig.from_params(data=str(data), model="dyglnet", out=str(folder / "full"), seed=3))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_sigterm_ends_the_epoch_saves_resume_pt_and_the_rerun_matches(tmp_path, make_prepared, monkeypatch):
    """SIGTERM (what SLURM sends a job it cancels, requeues or preempts) during epoch 2 of 4, with no periodic
    resume.pt: the run ends that epoch, saves resume.pt and exits with 143; a second SIGTERM changes nothing. The
    rerun continues from that epoch, loses none, and ends as an uninterrupted run."""
    data = make_prepared(tmp_path / "noval", empty_val=True)
    _params_file(tmp_path, epochs=4, checkpoint_every=100)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "pipeline.train", "--data", str(data), "--model", "dyglnet", "--out", str(out)]
    cmd += ["--seed", "3"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "progress.json").exists():  # after epoch 1
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no progress.json within 300 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGTERM)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    stopped = load_checkpoint(out / "resume.pt")["epoch"]
    assert 1 <= stopped < 4 and f"SIGTERM: stopped after epoch {stopped} of 4; resume.pt holds it" in stdout
    progress = json.loads((out / "progress.json").read_text())
    assert (progress["epoch"], progress["epochs"], progress["resume_epoch"]) == (stopped, 4, stopped)

    rerun = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    (resumed,) = json.loads((out / "train.json").read_text())["resumed"]
    assert (resumed["from_epoch"], resumed["lost_epochs"], resumed["lost_seconds"]) == (stopped, 0, 0.0)
    _uninterrupted(tmp_path, data, monkeypatch)
    same_weights(tmp_path / "full" / "best.pt", out / "best.pt")


def test_resumption_counts_the_epochs_trained_after_the_checkpoint(tmp_path):
    from engine.progress import read_progress, resumption, write_progress

    rows = [{"epoch": e, "seconds": 2.0, "val_dice": 50.0} for e in range(1, 6)]
    earlier = [{"time": 1.0, "from_epoch": 1, "lost_epochs": 0, "lost_seconds": 0.0}]
    write_progress(tmp_path, 10, rows, resume_epoch=3, resumed=earlier)  # killed after epoch 5, resume.pt at 3
    assert read_progress(tmp_path)["trained_seconds"] == 10.0
    history = resumption(tmp_path, rows[:3])
    assert history[0] == earlier[0] and len(history) == 2
    assert (history[1]["from_epoch"], history[1]["lost_epochs"], history[1]["lost_seconds"]) == (3, 2, 4.0)
    assert resumption(tmp_path / "absent", rows[:3])[0]["lost_epochs"] == 0


def test_huge_learning_rate_stops_before_anything_is_saved(tiny_prepared, tmp_path):
    out = tmp_path / "diverged"
    with pytest.raises(NonFiniteError, match="non-finite .* epoch 1.*no checkpoint of this run was written"):
        train(tiny_config(tiny_prepared, out, lr=1e4, warmup_epochs=0))
    assert list(out.iterdir()) == []  # no best.pt, resume.pt, log.csv or train.json of a diverged epoch


def test_divergence_after_checkpoints_names_what_is_kept(tiny_prepared, tmp_path, monkeypatch):
    out = tmp_path / "nan_val"
    real_validate = train_mod.validate
    calls = {"n": 0}

    def nan_in_epoch_2(*args, **kwargs):
        calls["n"] += 1
        dice, loss = real_validate(*args, **kwargs)
        return (dice, math.nan) if calls["n"] == 2 else (dice, loss)

    monkeypatch.setattr(train_mod, "validate", nan_in_epoch_2)
    with pytest.raises(NonFiniteError) as err:
        train(tiny_config(tiny_prepared, out))
    message = str(err.value)
    assert message.startswith("non-finite validation loss after epoch 2: training diverged")
    assert f"{out / 'resume.pt'} holds the training state after epoch 1" in message
    assert f"{out / 'best.pt'} the weights of epoch 1" in message
    assert load_checkpoint(out / "best.pt")["epoch"] == 1
    assert len(read_log(out / "log.csv")) == 1  # the diverged epoch is not logged


def test_non_finite_training_loss_stops_with_epoch_and_step(tiny_prepared, tmp_path, monkeypatch):
    out = tmp_path / "nan"
    calls = {"n": 0}
    real_forward = engine.recipe.BceDiceLoss.forward

    def poisoned(self, logits, target):
        calls["n"] += 1
        loss = real_forward(self, logits, target)
        # epoch 1 = 2 training steps + 1 validation batch; call 5 is epoch 2, step 2
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(engine.recipe.BceDiceLoss, "forward", poisoned)
    with pytest.raises(
        FloatingPointError, match=r"epoch 2, step 2; .*resume.pt holds the training state after epoch 1"
    ):
        train(tiny_config(tiny_prepared, out))
    assert load_checkpoint(out / "resume.pt")["epoch"] == 1  # epoch 1's checkpoint is intact


@pytest.mark.slow
def test_dataset_without_validation_keeps_last_epoch_or_carves(tmp_path, make_prepared):
    data = make_prepared(tmp_path / "noval", empty_val=True)
    last = train(tiny_config(data, tmp_path / "last", selection="last", epochs=2))
    assert last["selection"] == "last" and last["best_val_dice"] is None
    assert load_checkpoint(tmp_path / "last" / "best.pt")["epoch"] == 2
    assert read_log(tmp_path / "last" / "log.csv")[0]["val_dice"] == ""
    carved = train(tiny_config(data, tmp_path / "carve", selection="carve", epochs=2))
    assert carved["selection"] == "best_val_dice" and carved["best_val_dice"] is not None


def _resume_checkpoint(cfg: TrainConfig, **changes) -> None:
    """A resume.pt whose fingerprint is that of `cfg` with `changes` (nothing else is read before the check)."""
    fingerprint = {**run_fingerprint(cfg, 1, "fp32"), **changes}
    save_checkpoint(Path(cfg.out) / "resume.pt", {"fingerprint": fingerprint, "epoch": 1}, kind="resume")


@pytest.mark.slow
def test_resume_refuses_other_settings_and_automatic_resume_sets_them_aside(tiny_prepared, tmp_path, capsys):
    cfg = tiny_config(tiny_prepared, tmp_path / "run", epochs=1)
    Path(cfg.out).mkdir()
    _resume_checkpoint(cfg, img_size=64, data="0123456789abcdef", model="unet")
    with pytest.raises(CheckpointError) as err:
        train(cfg, resume=True)
    assert str(err.value).startswith(f"{cfg.out}/resume.pt was saved with data 0123456789abcdef, now ")
    assert "model unet, now dyglnet" in str(err.value) and "img_size 64, now 32" in str(err.value)
    assert (Path(cfg.out) / "resume.pt").exists()  # refusing loses nothing

    train(cfg)  # no flag: the stale file is set aside, the run starts over
    assert "set aside as resume.pt.stale, starting" in capsys.readouterr().out
    assert (Path(cfg.out) / "resume.pt.stale").exists() and not (Path(cfg.out) / "resume.pt").exists()

    with pytest.raises(CheckpointError, match="--resume: .*resume.pt does not exist"):
        train(cfg, resume=True)


def test_model_key_builds_its_registered_builder(tiny_prepared, tmp_path, monkeypatch):
    _params_file(tmp_path, epochs=1)
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig.from_params(data=str(tiny_prepared), model="tiny_run", out=str(tmp_path / "run"))
    assert (cfg.model, cfg.builder, cfg.model_kwargs) == ("tiny_run", "dyglnet", TINY_MODEL)
    summary = train(cfg)
    assert (summary["model"], summary["builder"]) == ("tiny_run", "dyglnet")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"img_size": 40}, "--img-size 40: dyglnet needs a size divisible by 16 (nearest: 32, 48)"),
        ({"model": "swinunet", "model_kwargs": {}, "img_size": 64}, "--img-size 64: swinunet accepts only 224 x 224"),
        ({"model": "m2snet", "model_kwargs": {}, "img_size": 16}, "--img-size 16: m2snet needs inputs of at least 32"),
        ({"batch_size": 32}, "16 training images, fewer than one batch of 32"),
        ({"model_kwargs": {"no_such_option": 1}}, "models.dyglnet.model_kwargs {'no_such_option': 1}"),
    ],
)
def test_settings_the_model_or_data_cannot_take_fail_before_any_file_is_written(
    tiny_prepared, tmp_path, changes, message
):
    out = tmp_path / "run"
    with pytest.raises(UserError) as err:
        train(tiny_config(tiny_prepared, out, **changes))
    assert message in str(err.value)
    assert not out.exists()


def test_truncated_and_foreign_checkpoints_are_rejected(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"model": {"w": torch.ones(3)}})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a dyglbench checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="a model checkpoint, expected a resume checkpoint"):
        load_checkpoint(good, kind="resume")


@pytest.mark.slow
def test_cli_user_errors_are_one_line_with_exit_status_2(tiny_prepared, tmp_path):
    _params_file(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    cfg = tiny_config(tiny_prepared, out, augment=AugmentParams(**NO_AUGMENT).model_dump())  # as params.yaml
    _resume_checkpoint(cfg)  # saved at 32 px
    (out / "best.pt").write_bytes(b"an earlier run's weights")
    base = ["--data", str(tiny_prepared), "--model", "dyglnet", "--out", str(out), "--seed", "7"]
    cases = [
        (["--resume", "--img-size", "64"], f"error: {out}/resume.pt was saved with img_size 32, now 64; "),
        (["--model", "no_such_model"], "error: unknown model 'no_such_model'"),
        (["--epochs", "0"], "error: invalid training setting: epochs: "),
    ]
    for extra, expected in cases:
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.train", *base, *extra],
            cwd=tmp_path,
            env=ENV,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2, (extra, result.stderr)
        assert result.stderr.startswith(expected), (extra, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert (out / "best.pt").read_bytes() == b"an earlier run's weights"  # refused runs touch nothing


def test_help_does_not_import_torch():
    code = "import sys, pipeline.train; assert 'torch' not in sys.modules and 'albumentations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tiny_prepared, tmp_path):
    """Same global batch (8 = 2 x 4), same images per step, no augmentation: the loss curves agree
    within 2% per epoch (measured: 0.1-0.8%).

    They are not identical: on the CPU each process normalises with the BatchNorm statistics of its
    own 4 images (PyTorch's SyncBatchNorm needs CUDA), and the batch-level Dice term of the loss is
    computed per process.
    """
    _params_file(tmp_path, epochs=2)  # resume.pt after epoch 1: the RNG states are gathered
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    common = ["--data", str(tiny_prepared), "--model", "dyglnet", "--seed", "3"]
    subprocess.run(
        [sys.executable, "-m", "pipeline.train", *common, "--out", "single"],
        cwd=tmp_path,
        check=True,
        env=ENV,
        capture_output=True,
    )
    subprocess.run(
        [
            torchrun,
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            "-m",
            "pipeline.train",
            *common,
            "--out",
            "ddp",
        ],
        cwd=tmp_path,
        check=True,
        env=ENV,
        capture_output=True,
    )
    single, ddp = read_log(tmp_path / "single" / "log.csv"), read_log(tmp_path / "ddp" / "log.csv")
    assert len(single) == len(ddp) == 2
    for s, d in zip(single, ddp, strict=True):
        assert float(d["lr"]) == pytest.approx(float(s["lr"]))
        assert float(d["train_loss"]) == pytest.approx(float(s["train_loss"]), rel=0.02)
    assert load_checkpoint(tmp_path / "ddp" / "best.pt")["config"]["batch_size"] == 8
    assert json.loads((tmp_path / "ddp" / "train.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_compiled_training_matches_eager(tiny_prepared, tmp_path):
    """torch.compile (inductor, C++ on the CPU) computes the same training within float tolerance: losses
    within 1e-3 relative (fused kernels sum in another order; measured 1.4e-4 on val_loss), Dice within 0.5
    percentage points, over 1 epoch (2 steps); its checkpoint holds the
    plain module's keys. A three-layer conv-BN net keeps the compile to seconds (DyGLNet takes minutes)."""
    from models.registry import _BUILDERS, _EXTRA, register_model

    @register_model(family="CNN", min_input_size=16)
    def _compile_test_net(**kwargs):
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 1, 3, padding=1),
        )

    try:
        kw = dict(epochs=1, model="_compile_test_net", model_kwargs={})
        eager = train(tiny_config(tiny_prepared, tmp_path / "eager", **kw))
        compiled = train(tiny_config(tiny_prepared, tmp_path / "compiled", compile=True, **kw))
    finally:
        _BUILDERS.pop("_compile_test_net", None), _EXTRA.pop("_compile_test_net", None)
    a, b = read_log(tmp_path / "eager" / "log.csv")[0], read_log(tmp_path / "compiled" / "log.csv")[0]
    for key in ("train_loss", "val_loss"):
        assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-3), key
    for key in ("train_dice", "val_dice"):
        assert float(b[key]) == pytest.approx(float(a[key]), abs=0.5), key
    assert compiled["steps"] == eager["steps"] == 2
    keys = load_checkpoint(tmp_path / "compiled" / "best.pt")["model"].keys()
    assert keys == load_checkpoint(tmp_path / "eager" / "best.pt")["model"].keys()
    assert not any(k.startswith("_orig_mod.") for k in keys)


def test_deferred_non_finite_check_names_the_first_bad_step(tiny_prepared, tmp_path, monkeypatch):
    """The CUDA path (the host reads the device-side sums every HOST_SYNC_EVERY steps), run on the CPU:
    a NaN loss at step 1 is reported as step 1 when the host looks at the end of the epoch. The model
    upsamples bilinearly: the CPU backward of DyGLNet's grid_sample crashes on NaN positions."""
    monkeypatch.setitem(train_mod.HOST_SYNC_EVERY, "cpu", 100)
    real_forward = engine.recipe.BceDiceLoss.forward
    calls = {"n": 0}

    def poisoned(self, logits, target):
        calls["n"] += 1
        loss = real_forward(self, logits, target)
        return loss * float("nan") if calls["n"] == 1 else loss

    monkeypatch.setattr(engine.recipe.BceDiceLoss, "forward", poisoned)
    out = tmp_path / "deferred"
    with pytest.raises(NonFiniteError, match=r"^non-finite training loss at epoch 1, step 1; no checkpoint"):
        train(tiny_config(tiny_prepared, out, model="dyglnet_w_bilinear"))
    assert calls["n"] == 2  # both steps of the epoch ran before the host looked
    assert sorted(p.name for p in out.iterdir()) == []

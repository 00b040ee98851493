"""Evaluation outputs, prediction on new images, and the inference fast path, from a briefly trained checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from fakedata import save, tiny_checkpoint

import engine.factory as factory
import engine.inference as inference
from core.cli import run
from datasets.base import IMAGE_EXTS
from datasets.torch_data import SegmentationArrays, build_transforms
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.metric_names import PAPER_METRICS
from engine.metrics import image_metrics
from models import create_model
from pipeline.evaluate import evaluate
from pipeline.evaluate import main as evaluate_main
from pipeline.predict import main as predict_main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tiny_prepared, tmp_path_factory) -> Path:
    return tiny_checkpoint(tiny_prepared, tmp_path_factory.mktemp("run"), img_size=32)


def _metric_keys() -> list[str]:
    return list(image_metrics(torch.zeros(1, 1, 4, 4, dtype=torch.bool), torch.zeros(1, 1, 4, 4)))


# --- evaluate ----------------------------------------------------------------------------------------


def test_evaluate_writes_per_image_metrics_and_predictions(tiny_prepared, checkpoint, tmp_path):
    summary = evaluate(str(tiny_prepared), str(checkpoint), str(tmp_path), n_boot=200)
    test_ids = json.loads((tiny_prepared / "split.json").read_text())["test"]
    table = pd.read_csv(tmp_path / "per_image.csv", dtype={"id": str})
    keys = _metric_keys()
    assert list(table.columns) == ["id", *keys]  # every key image_metrics returns, none fixed here
    assert table["id"].tolist() == test_ids
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(summary))
    for key in keys:  # per_image.csv and metrics.json in one unit per metric: every proportion in percent
        assert metrics[key]["mean"] == pytest.approx(table[key].mean()), key
        assert key in metrics["units"]
        if key in PAPER_METRICS:
            assert metrics["units"][key] == "%" and table[key].between(0, 100).all(), key
    assert metrics["hd95"]["mean"] == pytest.approx(table["hd95"].mean())  # pixels
    assert metrics["dice"]["ci95_low"] <= metrics["dice"]["mean"] <= metrics["dice"]["ci95_high"]
    assert (metrics["img_size"], metrics["prepared_size"]) == (32, 32)
    preds = sorted(p.stem for p in (tmp_path / "pred").glob("*.png"))
    assert preds == sorted(test_ids)
    assert set(np.unique(cv2.imread(str(tmp_path / "pred" / f"{test_ids[0]}.png"), 0))) <= {0, 255}
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["bn_folded"] > 0 and timing["compiled"] is False


def test_evaluate_scores_at_the_prepared_size(make_prepared, checkpoint, tmp_path, capsys):
    """A 32-px checkpoint on 64-px data: the model runs at 32 px, HD95 is in 64-px pixels."""
    data = make_prepared(tmp_path / "prep64", n_train=2, n_val=1, n_test=5, size=64, seed=3)
    evaluate(data, checkpoint, tmp_path / "out", n_boot=10)
    err = capsys.readouterr().err
    assert "trained at 32 px" in err and "prepared at 64 px" in err and "HD95 in 64-px pixels" in err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["img_size"], metrics["prepared_size"]) == (32, 64)
    ids = json.loads((data / "split.json").read_text())["test"]
    rows = {k: r for r, k in enumerate(json.loads((data / "ids.json").read_text()))}
    masks = np.load(data / "masks.npy")[[rows[k] for k in ids]]
    preds = np.stack([cv2.imread(str(tmp_path / "out" / "pred" / f"{k}.png"), 0) > 0 for k in ids])
    assert preds.shape == masks.shape == (5, 64, 64)
    table = pd.read_csv(tmp_path / "out" / "per_image.csv", dtype={"id": str})
    expected = image_metrics(torch.from_numpy(preds)[:, None], torch.from_numpy(masks)[:, None].float())
    assert np.allclose(table["hd95"], expected["hd95"], atol=1e-5)  # the PNGs at 64 px are what was scored
    # and the predictions are the model's at 32 px, resized back
    model, cfg = factory.model_from_checkpoint(checkpoint, torch.device("cpu"))
    dataset = SegmentationArrays(data, ids, build_transforms(cfg.get("augment", {}), 64, train=False))
    images = torch.stack([dataset[i][0] for i in range(len(ids))])
    with torch.no_grad():
        logits = model(F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False))
    manual = F.interpolate(logits, size=(64, 64), mode="bilinear", align_corners=False)[:, 0] > 0
    assert (manual.numpy() != preds).mean() < 1e-3  # BatchNorm folding may flip a pixel at logit 0


def test_evaluate_runs_in_inference_mode(tiny_prepared, checkpoint, tmp_path, monkeypatch):
    seen = []
    real = factory.model_from_checkpoint

    def spy(path, device):
        model, cfg = real(path, device)
        model.register_forward_pre_hook(lambda *_: seen.append(torch.is_inference_mode_enabled()))
        return model, cfg

    monkeypatch.setattr(factory, "model_from_checkpoint", spy)
    evaluate(tiny_prepared, checkpoint, tmp_path, n_boot=10, fold_bn=False, save_predictions=False)
    assert seen and all(seen)


def _evaluate_cli(capsys, *args) -> tuple[int, str]:
    code = run(evaluate_main, [str(a) for a in args])
    return code, capsys.readouterr().err


def test_evaluate_cli_bad_input(tiny_prepared, checkpoint, tmp_path, capsys):
    common = ["--out", tmp_path / "out"]
    code, err = _evaluate_cli(capsys, "--data", tiny_prepared, "--checkpoint", tmp_path / "no.pt", *common)
    assert code == 2 and err == f"error: --checkpoint {tmp_path / 'no.pt'}: no such file\n"
    code, err = _evaluate_cli(capsys, "--data", tmp_path / "nodata", "--checkpoint", checkpoint, *common)
    assert code == 2 and err.startswith(f"error: --data {tmp_path / 'nodata'}: no such folder")
    with pytest.raises(SystemExit) as exit_info:  # argparse's own error
        evaluate_main(["--data", str(tiny_prepared), "--checkpoint", str(checkpoint), "--split", "x"])
    assert exit_info.value.code == 2 and "invalid choice: 'x'" in capsys.readouterr().err
    code, err = _evaluate_cli(capsys, "--data", tiny_prepared, "--checkpoint", checkpoint, *common, "--device", "gpu")
    assert code == 2 and err.startswith("error: --device gpu: not a device") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_checkpoint_of_another_model_is_one_line(checkpoint, tiny_prepared, tmp_path):
    state = load_checkpoint(checkpoint)
    state["config"] = {**state["config"], "model": "unet", "builder": "unet", "model_kwargs": {}}
    state = {k: v for k, v in state.items() if k not in ("format", "kind")}
    save_checkpoint(tmp_path / "other.pt", state)
    cmd = [sys.executable, "-m", "pipeline.evaluate", "--data", str(tiny_prepared), "--out", str(tmp_path / "o")]
    r = subprocess.run([*cmd, "--checkpoint", str(tmp_path / "other.pt")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: {tmp_path / 'other.pt'}: its weights do not fit")
    assert r.stderr.count("\n") == 1


# --- the fast path -------------------------------------------------------------------------------------


def _randomise_batchnorm(model: nn.Module) -> nn.Module:
    """Running statistics and affine parameters away from their identity defaults, so folding matters."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("name,kwargs", [("dyglnet", {"depths": [1, 1, 1]}), ("unet", {})])
def test_batchnorm_folding_keeps_outputs(name, kwargs):
    torch.manual_seed(0)
    model = _randomise_batchnorm(create_model(name, **kwargs))
    n_bn = sum(type(m) is nn.BatchNorm2d for m in model.modules())
    folded, n = inference.fold_batchnorm(model, inference.example_input(32))
    assert n > 0 and sum(type(m) is nn.BatchNorm2d for m in folded.modules()) == n_bn - n
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert (model(x) - folded(x)).abs().max() < 1e-4
    assert sum(type(m) is nn.BatchNorm2d for m in model.modules()) == n_bn  # the original is untouched


class _ConvUsedTwice(nn.Module):
    """conv -> bn, and the conv's output is also added afterwards: folding that pair would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.block = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))

    def forward(self, x):
        y = self.conv(x)
        return self.block(self.bn(y) + y)


def test_unsafe_pair_is_not_folded():
    model = _randomise_batchnorm(_ConvUsedTwice())
    x = inference.example_input(8)
    assert len(inference.conv_bn_pairs(model, x)) == 2
    folded, n = inference.fold_batchnorm(model, x)
    assert n == 1 and isinstance(folded.bn, nn.BatchNorm2d) and isinstance(folded.block[1], nn.Identity)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5)


@pytest.mark.slow
def test_compiled_model_matches_eager():
    model = _randomise_batchnorm(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()))
    fast, info = inference.fast_model(model, 16, torch.device("cpu"), fold_bn=True, compile=True)
    assert info == {"fold_bn": 1, "compile": True}
    x = inference.example_input(16)
    with torch.inference_mode():
        assert (fast(x) - model(x)).abs().max() < 1e-4


# --- predict -------------------------------------------------------------------------------------------


def _images(folder: Path, names: dict[str, tuple[int, int]]) -> None:
    rng = np.random.default_rng(0)
    for name, (h, w) in names.items():
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        save(img, folder / name, **({"lossless": True} if name.endswith(".webp") else {}))


def _predict(capsys, checkpoint, inputs, out, *extra) -> tuple[int, str]:
    code = run(predict_main, ["--checkpoint", str(checkpoint), "--input", str(inputs), "--output", str(out), *extra])
    return code, capsys.readouterr().err


def test_predict_writes_masks_at_original_size(checkpoint, tmp_path):
    # folder names as datasets ship them: spaces, parentheses, accents
    inputs = tmp_path / "Warwick QU Dataset (Released 2016_07_08) \u00fc"
    _images(inputs, {"wide.png": (50, 70), "tall.jpg": (90, 40)})
    (inputs / "notes.txt").write_text("not an image")
    out = tmp_path / "masks (pr\u00e9dites)"
    cmd = [sys.executable, "-m", "pipeline.predict", "--checkpoint", str(checkpoint), "--overlay"]
    subprocess.run([*cmd, "--input", str(inputs), "--output", str(out)], check=True, capture_output=True, cwd=REPO)
    wide, tall = cv2.imread(str(out / "wide.png"), 0), cv2.imread(str(out / "tall.png"), 0)
    assert wide.shape == (50, 70) and tall.shape == (90, 40)
    assert set(np.unique(wide)) <= {0, 255}
    assert cv2.imread(str(out / "wide_overlay.png")).shape == (50, 70, 3)
    listing = json.loads((out / "predictions.json").read_text())["files"]
    assert listing == {"wide.png": "wide.png", "wide_overlay.png": "wide.png", "tall.png": "tall.jpg"} | {
        "tall_overlay.png": "tall.jpg"
    }


def test_predict_accepts_every_reader_format_and_never_merges_outputs(checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    names = {f"img_{ext[1:]}{ext}": (20, 24) for ext in sorted(IMAGE_EXTS)}
    names.update({"x.png": (20, 30), "x.jpg": (30, 20), "X.bmp": (10, 10)})  # one stem, three files
    _images(inputs, names)
    code, err = _predict(capsys, checkpoint, inputs, tmp_path / "out")
    assert code == 0, err
    written = {p.name for p in (tmp_path / "out").iterdir()} - {"predictions.json"}
    expected = {f"img_{ext[1:]}.png" for ext in IMAGE_EXTS} | {"x_png.png", "x_jpg.png", "X_bmp.png"}
    assert written == expected and f"wrote {len(names)} masks" in err
    assert cv2.imread(str(tmp_path / "out" / "x_jpg.png"), 0).shape == (30, 20)
    # names that would still coincide are refused before anything is written
    (inputs / "y.png").write_bytes((inputs / "x.png").read_bytes())
    (inputs / "y_overlay.jpg").write_bytes((inputs / "x.jpg").read_bytes())
    code, err = _predict(capsys, checkpoint, inputs, tmp_path / "out2", "--overlay")
    clash = "y.png and y_overlay.jpg would both be written to y_overlay.png in --output; rename one of them"
    assert code == 2 and err == f"error: --input: {clash}\n"
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_predict_refuses_overlapping_folders(checkpoint, tmp_path, capsys, where):
    inputs = tmp_path / "data" / "in"
    _images(inputs, {"a.png": (16, 16)})
    before = (inputs / "a.png").read_bytes()
    out = {"same": inputs, "inside": inputs / "masks", "around": tmp_path / "data"}[where]
    code, err = _predict(capsys, checkpoint, inputs, out)
    assert code == 2 and err.startswith(f"error: --output {out} and --input {inputs} overlap"), err
    assert err.count("\n") == 1 and (inputs / "a.png").read_bytes() == before
    assert sorted(p.name for p in inputs.iterdir()) == ["a.png"]


def test_predict_keeps_files_it_did_not_write(checkpoint, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _images(inputs, {"a.png": (16, 16), "b.png": (16, 16)})
    out.mkdir()
    (out / "a.png").write_bytes(b"my own mask")
    code, err = _predict(capsys, checkpoint, inputs, out)
    assert code == 2 and "not an earlier output of pipeline.predict" in err
    assert (out / "a.png").read_bytes() == b"my own mask"
    (out / "a.png").unlink()
    assert _predict(capsys, checkpoint, inputs, out)[0] == 0  # empty: fine
    assert _predict(capsys, checkpoint, inputs, out)[0] == 0  # an earlier output: fine
    _images(inputs, {"c.png": (16, 16)})
    (out / "c.png").write_bytes(b"mine")  # later added by hand
    code, err = _predict(capsys, checkpoint, inputs, out)
    assert code == 2 and "would overwrite c.png, which pipeline.predict did not write" in err
    assert (out / "c.png").read_bytes() == b"mine"


def test_predict_skips_a_corrupt_image_and_fails_at_the_end(checkpoint, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _images(inputs, {"a.png": (16, 16), "b.jpg": (20, 16), "c.png": (16, 16)})
    assert _predict(capsys, checkpoint, inputs, out)[0] == 0
    data = (inputs / "b.jpg").read_bytes()
    (inputs / "b.jpg").write_bytes(data[: len(data) // 3])
    code, err = _predict(capsys, checkpoint, inputs, out)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert lines[0].startswith(f"warning: {inputs / 'b.jpg'}: unreadable or corrupt image")
    assert lines[-1] == "error: 1 of 3 images could not be read and have no mask: b.jpg (see the warnings above)"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png", "predictions.json"]  # no stale b.png
    assert json.loads((out / "predictions.json").read_text())["unreadable"] == ["b.jpg"]

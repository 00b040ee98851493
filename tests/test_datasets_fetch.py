"""``python -m datasets fetch`` against a local HTTP server (127.0.0.1, port 0) serving generated archives in
each fetchable dataset's real layout: verified download and unpacking, first-download checksum records, a
wrong checksum, a download cut off half-way (resumed with a Range request), the server down, the manual
route, and ``--from`` with zip, tar and rar archives. No internet."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from fakedata import (
    make_brain,
    make_glas,
    make_isic,
    make_kvasir,
    make_ph2,
    make_tnbc,
    tree_files,
    write_rar,
    write_tar,
    write_zip,
)

import datasets.__main__ as cli
from core.cli import run
from datasets.archives import ArchiveError, extract
from datasets.fetch import MARKER, fetch
from datasets.reader import load_image
from datasets.registry import get_adapter


class _Handler(BaseHTTPRequestHandler):
    """GET with Range/If-Range (206), an ETag, and one-shot faults: "truncate" sends half the body and closes."""

    def do_GET(self):  # noqa: N802 - http.server's name
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
        start = 0
        if rng and srv.ranges and if_range in (None, etag):
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        if srv.faults.pop(self.path, None) == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.faults, srv.log, srv.ranges = {}, {}, [], True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _archive(maker, tmp: Path, name: str, junk: bool = True, pad: int = 0, **kw) -> tuple[bytes, dict]:
    """A zip of a generated tree in the dataset's layout (with macOS junk, as real archives have); `pad` adds a
    file of that many random bytes the adapter ignores (a download large enough to break off in the middle)."""
    tree = tmp / f"tree-{name}"
    truth = maker(tree, **kw)
    files = tree_files(tree)
    if pad:
        top = next(iter(files)).split("/")[0]
        files[f"{top}/padding.bin"] = np.random.default_rng(0).bytes(pad)
    if junk:
        top = next(iter(files)).split("/")[0]
        files[f"__MACOSX/{top}/._x.png"] = b"resource fork"
        files[f"{top}/.DS_Store"] = b"finder"
    return write_zip(tmp / "archives" / name, files).read_bytes(), truth


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = run(cli.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_good_archive_is_verified_unpacked_read_by_the_adapter_and_a_second_call_does_nothing(tmp_path, server, capsys):
    data, truth = _archive(make_kvasir, tmp_path, "kvasir-seg.zip", n=6)
    server.files["/downloads/kvasir-seg.zip"] = data
    to, dl, rec = tmp_path / "raw" / "kvasir", tmp_path / "dl", tmp_path / "checksums.json"
    args = ["fetch", "kvasir", "--to", to, "--url", f"{server.url}/downloads/kvasir-seg.zip"]
    args += ["--sha256", _sha(data), "--downloads", dl, "--checksums", rec]
    code, out, err = _cli(capsys, *args)
    assert code == 0, err
    assert "kvasir-seg.zip verified (sha256 given with --sha256)" in out
    assert "6 pairs (warning: Kvasir-SEG has 1000" in out and f"in {to}" in out
    pairs = get_adapter("kvasir").pairs(to)
    assert sorted(p.id for p in pairs) == sorted(truth)
    for p in pairs:
        assert load_image(p.image).shape == truth[p.id][0].shape
    assert not list(to.rglob("__MACOSX")) and not list(to.rglob(".DS_Store"))
    marker = json.loads((to / MARKER).read_text())
    assert marker["archives"][0]["hash"] == f"sha256:{_sha(data)}" and len(marker["files"]) == 13
    assert not [p for p in to.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    assert not rec.exists()  # nothing recorded: the checksum was given
    requests_before = len(server.log)
    before = _tree(to)

    code, out, err = _cli(capsys, *args)
    assert code == 0, err
    assert "up to date" in out and "archives verified: kvasir-seg.zip" in out and "nothing to do" in out
    assert len(server.log) == requests_before and _tree(to) == before


def test_first_download_records_the_checksum_and_later_downloads_are_compared(tmp_path, server, capsys):
    tree = tmp_path / "isic"
    make_isic(tree, n_train=3, n_test=2)
    names = sorted(p.name for p in tree.iterdir())
    for folder in names:
        files = {k: v for k, v in tree_files(tree).items() if k.startswith(folder + "/")}
        server.files[f"/2016/{folder}.zip"] = write_zip(tmp_path / "a" / f"{folder}.zip", files).read_bytes()
    to, rec = tmp_path / "raw", tmp_path / "checksums.json"
    args = ["fetch", "isic2016", "--to", to, "--url", f"{server.url}/2016/", "--downloads", tmp_path / "dl"]
    args += ["--checksums", rec]
    code, out, err = _cli(capsys, *args)
    assert code == 0, err
    recorded = json.loads(rec.read_text())["isic2016"]
    assert sorted(recorded) == sorted(f"{n}.zip" for n in names)
    for name, entry in recorded.items():
        assert entry["sha256"] == _sha(server.files[f"/2016/{name}"]) and entry["url"] == f"{server.url}/2016/{name}"
        assert f"recorded sha256 {entry['sha256']} of {name}" in out
    assert len(get_adapter("isic2016").pairs(to)) == 5

    # the server now serves another file under one of the names: a new download is refused
    changed = "ISBI2016_ISIC_Part1_Test_GroundTruth.zip"
    server.files[f"/2016/{changed}"] = write_zip(tmp_path / "b.zip", {"x.txt": b"other"}).read_bytes()
    to2 = tmp_path / "raw2"
    args2 = ["fetch", "isic2016", "--to", to2, "--url", f"{server.url}/2016/", "--downloads", tmp_path / "dl2"]
    code, out, err = _cli(capsys, *args2, "--checksums", rec)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{changed} from {server.url}/2016/{changed} has sha256 " in err
    assert f"expected {recorded[changed]['sha256']} (recorded at its first download" in err
    assert not to2.exists() and not (tmp_path / "dl2" / changed).exists()


def test_wrong_checksum_exits_2_with_one_line_and_leaves_the_target_untouched(tmp_path, server, capsys):
    data, _ = _archive(make_tnbc, tmp_path, "TNBC_NucleiSegmentation.zip")
    server.files["/tnbc.zip"] = data
    to = tmp_path / "tnbc"
    to.mkdir()
    args = ["fetch", "tnbc", "--to", to, "--url", f"{server.url}/tnbc.zip", "--downloads", tmp_path / "dl"]
    code, out, err = _cli(capsys, *args, "--checksums", tmp_path / "c.json")  # the pinned (real) checksum
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: tnbc: TNBC_NucleiSegmentation.zip"), err
    assert f"has sha256 {_sha(data)}, expected da708c3a" in err and "pinned from torch_em" in err
    assert f"pass --sha256 {_sha(data)}" in err
    assert list(to.iterdir()) == [] and list((tmp_path / "dl").iterdir()) == []  # the download was deleted

    # a target that holds an earlier fetch is left byte for byte as it was
    assert _cli(capsys, *args, "--sha256", _sha(data), "--checksums", tmp_path / "c.json")[0] == 0
    before = _tree(to)
    code, _, err = _cli(capsys, *args, "--sha256", "0" * 64, "--checksums", tmp_path / "c.json")
    assert code == 2 and "expected 0000" in err and _tree(to) == before


def test_download_cut_off_half_way_resumes_with_a_range_request(tmp_path, server, capsys):
    data, truth = _archive(make_kvasir, tmp_path, "kvasir-seg.zip", n=8, pad=400_000)
    server.files["/k.zip"] = data
    server.faults["/k.zip"] = "truncate"
    to, dl = tmp_path / "raw", tmp_path / "dl"
    args = ["fetch", "kvasir", "--to", to, "--url", f"{server.url}/k.zip", "--sha256", _sha(data), "--downloads", dl]
    code, _, err = _cli(capsys, *args)
    assert code == 2 and err.count("\n") == 1, err
    kept = (dl / "kvasir-seg.zip.part").stat().st_size
    assert 0 < kept <= len(data) // 2 and not to.exists()  # the bytes that arrived, up to the last whole read
    assert f"download of {server.url}/k.zip broke off after {kept} bytes" in err and "again to resume" in err

    code, out, err = _cli(capsys, *args)
    assert code == 0, err
    assert server.log[-1] == ("/k.zip", f"bytes={kept}-")
    assert f"resuming after {kept} bytes" in out
    assert (dl / "kvasir-seg.zip").read_bytes() == data and not list(dl.glob("*.part*"))
    assert sorted(p.id for p in get_adapter("kvasir").pairs(to)) == sorted(truth)


def test_a_server_that_ignores_ranges_restarts_cleanly(tmp_path, server, capsys):
    data, _ = _archive(make_kvasir, tmp_path, "kvasir-seg.zip", n=4, pad=400_000)
    server.files["/k.zip"], server.faults["/k.zip"], server.ranges = data, "truncate", False
    args = ["fetch", "kvasir", "--to", tmp_path / "raw", "--url", f"{server.url}/k.zip", "--sha256", _sha(data)]
    args += ["--downloads", tmp_path / "dl"]
    assert _cli(capsys, *args)[0] == 2
    kept = (tmp_path / "dl" / "kvasir-seg.zip.part").stat().st_size
    code, _, err = _cli(capsys, *args)
    assert code == 0, err
    assert server.log[-1] == ("/k.zip", f"bytes={kept}-")  # asked for the rest, got the whole file (200)
    assert (tmp_path / "dl" / "kvasir-seg.zip").read_bytes() == data


def test_server_down_gives_one_line_with_the_url_and_the_manual_route(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/kvasir-seg.zip"
    code, _, err = _cli(
        capsys, "fetch", "kvasir", "--to", tmp_path / "raw", "--url", url, "--downloads", tmp_path / "dl"
    )
    assert code == 2 and err.count("\n") == 1, err
    assert f"cannot download {url} (" in err and "Connection refused" in err
    assert "download kvasir-seg.zip from" in err and "python -m datasets fetch kvasir --from kvasir-seg.zip" in err
    assert not (tmp_path / "raw").exists()


def test_manual_dataset_prints_where_to_get_it_and_exits_0(tmp_path, capsys):
    code, out, err = _cli(capsys, "fetch", "ph2", "--to", tmp_path / "ph2")
    assert code == 0 and err == ""
    assert "Nothing was fetched" in out and "registration form" in out
    assert f"python -m datasets fetch ph2 --from PH2Dataset.rar --to {tmp_path / 'ph2'}" in out
    code, out, _ = _cli(capsys, "fetch", "brain_mri")
    assert code == 0 and "kaggle datasets download mateuszbuda/lgg-mri-segmentation" in out


def test_from_a_rar_archive_records_it_and_a_second_call_does_nothing(tmp_path, capsys):
    tree = tmp_path / "tree"
    truth = make_ph2(tree, n=4)
    archive = write_rar(tmp_path / "PH2Dataset.rar", tree_files(tree))
    to, rec = tmp_path / "ph2", tmp_path / "c.json"
    code, out, err = _cli(capsys, "fetch", "ph2", "--from", archive, "--to", to, "--checksums", rec)
    assert code == 0, err
    assert sorted(p.id for p in get_adapter("ph2").pairs(to)) == sorted(truth)
    assert json.loads(rec.read_text())["ph2"]["PH2Dataset.rar"]["sha256"] == _sha(archive.read_bytes())
    code, out, _ = _cli(capsys, "fetch", "ph2", "--from", archive, "--to", to, "--checksums", rec)
    assert code == 0 and "up to date" in out
    code, out, _ = _cli(capsys, "fetch", "ph2", "--to", to)
    assert code == 0 and "up to date" in out and "Nothing was fetched" not in out
    # the same name with other bytes is compared with the record
    other = write_rar(tmp_path / "other" / "PH2Dataset.rar", {"PH2Dataset/x.txt": b"x"})
    code, _, err = _cli(capsys, "fetch", "ph2", "--from", other, "--to", tmp_path / "p2", "--checksums", rec)
    assert code == 2 and "expected " + _sha(archive.read_bytes()) in err and "recorded at its first download" in err


def test_a_mirror_url_fetches_a_dataset_that_has_no_public_url(tmp_path, server, capsys):
    tree = tmp_path / "tree"
    make_ph2(tree, n=3)
    server.files["/lab/PH2Dataset.rar"] = write_rar(tmp_path / "PH2Dataset.rar", tree_files(tree)).read_bytes()
    args = ["fetch", "ph2", "--url", f"{server.url}/lab/PH2Dataset.rar", "--to", tmp_path / "ph2"]
    code, out, err = _cli(capsys, *args, "--downloads", tmp_path / "dl", "--checksums", tmp_path / "c.json")
    assert code == 0 and "recorded sha256" in out and len(get_adapter("ph2").pairs(tmp_path / "ph2")) == 3, err


def test_from_a_tar_archive_keeps_one_copy_of_kaggle_3m(tmp_path, capsys):
    tree = tmp_path / "tree"
    make_brain(tree, patients=2, slices=3)
    files = tree_files(tree)  # lgg-mri-segmentation/kaggle_3m/... and, as Kaggle ships it, kaggle_3m/ again
    files |= {k.removeprefix("lgg-mri-segmentation/"): v for k, v in files.items()}
    archive = write_tar(tmp_path / "archive.tar.gz", files)
    to = tmp_path / "brain"
    code, out, err = _cli(capsys, "fetch", "brain_mri", "--from", archive, "--to", to, "--checksums", tmp_path / "c")
    assert code == 0, err
    assert sorted(p.name for p in to.iterdir()) == [MARKER, "kaggle_3m"]
    assert len(get_adapter("brain_mri").pairs(to)) == 6


def test_from_checks_a_pinned_md5_by_archive_name(tmp_path, capsys):
    tree = tmp_path / "tree"
    make_glas(tree)
    archive = write_zip(tmp_path / "warwick_qu_dataset_released_2016_07_08.zip", tree_files(tree))
    code, _, err = _cli(
        capsys, "fetch", "glas", "--from", archive, "--to", tmp_path / "g", "--checksums", tmp_path / "c"
    )
    assert code == 2 and "has md5 " in err and "expected 495b2a9f3d694545fbec06673fb3f40f" in err, err
    digest = _sha(archive.read_bytes())
    code, out, err = _cli(capsys, "fetch", "glas", "--from", archive, "--to", tmp_path / "g0", "--sha256", digest)
    assert code == 0 and "verified (sha256 given with --sha256)" in out, err  # --sha256 overrides the pinned md5
    renamed = archive.rename(tmp_path / "glas-kaggle.zip")
    code, out, err = _cli(
        capsys, "fetch", "glas", "--from", renamed, "--to", tmp_path / "g", "--checksums", tmp_path / "c"
    )
    assert code == 0 and "recorded sha256" in out, err


def test_an_archive_of_another_dataset_is_refused_with_what_it_looks_like(tmp_path, capsys):
    tree = tmp_path / "tree"
    make_ph2(tree, n=3)
    archive = write_zip(tmp_path / "kvasir-seg.zip", tree_files(tree))
    to = tmp_path / "kv"
    code, _, err = _cli(
        capsys, "fetch", "kvasir", "--from", archive, "--to", to, "--sha256", _sha(archive.read_bytes())
    )
    assert code == 2 and err.count("\n") == 1, err
    assert "did not unpack into the layout the kvasir adapter reads" in err
    assert "this tree looks like ph2 (its adapter finds 3 pairs here)" in err and ".kv.tmp" not in err
    assert not to.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_target_that_fetch_did_not_write_is_never_replaced(tmp_path, capsys):
    tree = tmp_path / "tree"
    make_tnbc(tree)
    archive = write_zip(tmp_path / "t.zip", tree_files(tree))
    to = tmp_path / "mine"
    to.mkdir()
    (to / "notes.txt").write_text("mine")
    code, _, err = _cli(capsys, "fetch", "tnbc", "--from", archive, "--to", to, "--checksums", tmp_path / "c")
    assert code == 2 and "not unpacked by `python -m datasets fetch`" in err and "refusing to replace it" in err
    assert sorted(p.name for p in to.iterdir()) == ["notes.txt"]


def test_damaged_and_unsafe_archives(tmp_path, capsys):
    tree = tmp_path / "tree"
    make_tnbc(tree)
    good = write_zip(tmp_path / "good.zip", tree_files(tree)).read_bytes()
    damaged = tmp_path / "damaged.zip"
    # flip bytes inside the first member's data: the CRC check fails while unpacking
    damaged.write_bytes(good[:60] + bytes(b ^ 0xFF for b in good[60:90]) + good[90:])
    code, _, err = _cli(
        capsys, "fetch", "tnbc", "--from", damaged, "--to", tmp_path / "t", "--checksums", tmp_path / "c"
    )
    assert code == 2 and "damaged or truncated zip archive" in err, err
    assert not (tmp_path / "t").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".t.")]

    evil = write_zip(tmp_path / "evil.zip", {"../escaped.txt": b"x"})
    (tmp_path / "out").mkdir()
    with pytest.raises(ArchiveError, match="would be written outside the target"):
        extract(evil, tmp_path / "out", progress=False)
    assert not (tmp_path / "escaped.txt").exists()
    (tmp_path / "notes.zip").write_text("not an archive")
    with pytest.raises(ArchiveError, match="notes.zip: not a zip, tar or rar archive"):
        extract(tmp_path / "notes.zip", tmp_path / "out")


def test_bad_arguments(tmp_path, capsys):
    code, _, err = _cli(capsys, "fetch", "isic2016", "--sha256", "a" * 64)
    assert code == 2 and "isic2016 has 4 archives; give --sha256 ARCHIVE=HEX" in err
    code, _, err = _cli(capsys, "fetch", "isic2016", "--url", "http://mirror/x.zip")
    assert code == 2 and "give the folder that holds them, ending in '/'" in err
    code, _, err = _cli(capsys, "fetch", "kvasir", "--sha256", "xyz")
    assert code == 2 and "expected 64 hexadecimal digits" in err
    code, _, err = _cli(capsys, "fetch", "nope")
    assert code == 2 and "unknown dataset 'nope'" in err
    code, _, err = _cli(capsys, "fetch", "ph2", "--from", tmp_path / "missing.rar")
    assert code == 2 and "missing.rar: no such file" in err


def test_fetch_function_returns_what_it_did(tmp_path, server):
    data, _ = _archive(make_kvasir, tmp_path, "kvasir-seg.zip", n=3, junk=False)
    server.files["/k.zip"] = data
    lines: list[str] = []
    kw = dict(url=f"{server.url}/k.zip", sha256=[_sha(data)], downloads=tmp_path / "dl", say=lines.append)
    assert fetch("kvasir", tmp_path / "raw", **kw) == "fetched"
    assert fetch("kvasir", tmp_path / "raw", **kw) == "up to date"
    (tmp_path / "raw" / "Kvasir-SEG" / "kavsir_bboxes.json").write_text("changed size")
    assert fetch("kvasir", tmp_path / "raw", **kw) == "fetched"  # a changed file: unpacked again, not downloaded
    assert len(server.log) == 1 and sum("up to date" in line for line in lines) == 1


def test_make_data_fetches_checks_and_lists_what_is_missing(tmp_path, server, capsys, monkeypatch):
    from dataclasses import replace

    import yaml

    import pipeline.tools.data as data_tool
    from datasets.catalog import SOURCES

    data, _ = _archive(make_kvasir, tmp_path, "kvasir-seg.zip", n=5)
    server.files["/k.zip"] = data
    kvasir = SOURCES["kvasir"]
    local = replace(kvasir.archives[0], url=f"{server.url}/k.zip", hash=f"sha256:{_sha(data)}")
    monkeypatch.setitem(SOURCES, "kvasir", replace(kvasir, archives=(local,)))
    monkeypatch.chdir(tmp_path)  # the default downloads folder, data/downloads/NAME, is relative
    make_tnbc(tmp_path / "raw" / "tnbc")  # put there by hand: checked, not fetched
    params = yaml.safe_load((Path(__file__).parents[1] / "configs" / "paper.yaml").read_text())
    params["datasets"] = {n: {"raw": f"raw/{n}"} for n in ("kvasir", "ph2", "tnbc")}
    params["transfer"] = {"pairs": [], "test_only": {}}  # the paper's pairs name datasets left out here
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    code = run(data_tool.main, ["--params", str(tmp_path / "params.yaml")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "| kvasir    | raw/kvasir | fetched; 5 pairs; problems: count" in out
    assert "| ph2       | raw/ph2    | missing" in out and "| tnbc      | raw/tnbc   | 9 pairs; problems: count" in out
    steps = err.strip().splitlines()
    assert steps[:2] == [
        "next steps:",
        "  kvasir: python -m datasets check kvasir --raw raw/kvasir  (lists the problems)",
    ]
    assert "  ph2: fill in the registration form" in steps[2] and "--from PH2Dataset.rar --to raw/ph2" in steps[2]
    assert steps[3] == "  tnbc: python -m datasets check tnbc --raw raw/tnbc  (lists the problems)"
    assert (tmp_path / "data" / "downloads" / "kvasir" / "kvasir-seg.zip").read_bytes() == data

    requests_before = len(server.log)
    run(data_tool.main, ["--params", str(tmp_path / "params.yaml")])
    out, _ = capsys.readouterr()
    assert "up to date; 5 pairs" in out and len(server.log) == requests_before


def test_every_adapter_has_a_source_entry():
    """Every registered dataset, generated ones included, has its licence in the reports' provenance."""
    from datasets.catalog import SOURCES, terms
    from datasets.registry import adapter_names

    assert sorted(adapter_names()) == sorted(SOURCES)
    assert "not recorded" not in terms("shifted")

"""``python -m datasets fetch NAME``: download, verify and unpack a dataset into the layout its adapter reads.

Datasets with a stable public URL (`datasets.catalog`: Kvasir-SEG, ISIC 2016's four archives, TNBC) are
downloaded with pooch (`pooch.retrieve`: the file is verified against its checksum before it is moved into
place) through :class:`datasets.download.ResumingDownloader` (progress bar, resume after an interruption).
The others print how to get the archive by hand; ``--from ARCHIVE`` then verifies and unpacks it.

Checksums: a checksum published for an archive is pinned in `datasets.catalog` (with its source);
``--sha256`` overrides it (a mirror that serves another version). An archive without one gets its sha256
recorded at its first download in ``datasets/checksums.json`` (a tracked file: commit it), printed, and
every later download is compared with it.

Unpacking: every archive of the dataset is unpacked into a temporary folder beside the target, the
adapter must find its pairs there, and only then does the folder replace the target
(`core.fsutil.atomic_dir`): a bad checksum, a broken download or a damaged archive leaves the target as
it was. The target gets a ``.fetched.json`` (the archives' checksums and every file's size); a second
call finds it intact and does nothing. A non-empty target without it is never replaced.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.fsutil import atomic_dir, atomic_write_json
from core.paths import REPO_ROOT
from datasets.archives import extract
from datasets.base import DatasetError
from datasets.catalog import Archive, Source, manual_route, source
from datasets.check import layout_hint
from datasets.download import DownloadError, ResumingDownloader
from datasets.registry import get_adapter

RECORD_FILE = REPO_ROOT / "datasets" / "checksums.json"
MARKER = ".fetched.json"
RAW_ROOT = Path("data/raw")
DOWNLOADS = Path("data/downloads")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class FetchError(UserError):
    """A fetch that could not complete; the target was left as it was."""


@dataclass(frozen=True)
class Planned:
    archive: Archive
    url: str | None
    expected: str | None  # "sha256:HEX" / "md5:HEX", or None: record it
    why: str  # where `expected` comes from


def default_target(name: str) -> Path:
    return RAW_ROOT / name


def load_record(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise FetchError(f"{path}: not a readable checksum record ({e})") from e
    return data if isinstance(data, dict) else {}


def parse_sha256(values: Sequence[str], name: str, archives: Sequence[str]) -> dict[str, str]:
    """``--sha256 HEX`` (one archive) or ``--sha256 ARCHIVE=HEX`` -> {archive name: hex}; `archives` are the names
    the values may refer to (the dataset's archives, or the files given with --from)."""
    out: dict[str, str] = {}
    for value in values:
        archive, _, hexa = value.rpartition("=")
        if not archive:
            if len(archives) != 1:
                raise FetchError(
                    f"--sha256 {value}: {name} has {len(archives)} archives; give --sha256 ARCHIVE=HEX for each "
                    f"({', '.join(archives) or 'none is known: name the --from file'})"
                )
            archive = archives[0]
        if archive not in archives:
            raise FetchError(f"--sha256 {value}: no archive {archive!r} here; the archives: {', '.join(archives)}")
        if not _HEX64.fullmatch(hexa):
            raise FetchError(f"--sha256 {value}: expected 64 hexadecimal digits")
        out[archive] = hexa.lower()
    return out


def _url(archive: Archive, src: Source, mirror: str | None) -> str | None:
    if not mirror:
        return archive.url
    if len(src.archives) == 1:
        return mirror
    if not mirror.endswith("/"):
        raise FetchError(
            f"--url {mirror}: {src.name} has {len(src.archives)} archives; give the folder that holds them, "
            "ending in '/' (each archive's name is appended)"
        )
    return mirror + archive.name


def plan(
    src: Source, record: dict, sha256: dict[str, str], mirror: str | None = None, record_name: str = RECORD_FILE.name
) -> list[Planned]:
    """Each archive of `src` with its URL and the checksum it must have, and where that checksum comes from."""
    out = []
    recorded = record.get(src.name, {})
    for a in src.archives:
        if a.name in sha256:
            expected, why = f"sha256:{sha256[a.name]}", "given with --sha256"
        elif a.hash:
            expected, why = a.hash, f"pinned from {a.hash_source}"
        elif a.name in recorded:
            expected, why = f"sha256:{recorded[a.name]['sha256']}", f"recorded at its first download in {record_name}"
        else:
            expected, why = None, "none known: recorded now"
        out.append(Planned(a, _url(a, src, mirror), expected, why))
    return out


def _marker(to: Path) -> dict | None:
    try:
        data = json.loads((to / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def _intact(to: Path, marker: dict) -> list[str]:
    """Files of the marker that are missing or changed size (empty: the unpacked tree is intact)."""
    bad = []
    for rel, size in marker["files"].items():
        p = to / rel
        if not p.is_file() or p.stat().st_size != size:
            bad.append(rel)
    return bad


def _refuse_foreign(to: Path, name: str) -> None:
    if to.exists() and (not to.is_dir() or any(to.iterdir())) and _marker(to) is None:
        raise FetchError(
            f"{to}: not empty and not unpacked by `python -m datasets fetch` (no {MARKER}); refusing to replace it. "
            f"Pass another --to, or check what is there: python -m datasets check {name} --raw {to}"
        )


def _hash(path: Path, expected: str | None) -> str:
    """``alg:hex`` of `path` in the algorithm of `expected` (sha256 by default)."""
    import pooch

    alg = expected.split(":", 1)[0] if expected and ":" in expected else "sha256"
    return f"{alg}:{pooch.file_hash(str(path), alg=alg)}"


def _sha256_of(hash_text: str) -> str:
    return hash_text.split(":", 1)[1]


def _download(name: str, p: Planned, folder: Path, to: Path, progress: bool, say: Callable[[str], None]) -> Path:
    import pooch

    pooch.get_logger().setLevel(logging.WARNING)
    partial = folder / f"{p.archive.name}.part"
    downloader = ResumingDownloader(partial, progress=progress)
    dest = folder / p.archive.name
    if not dest.exists():
        resume = f" (resuming after {partial.stat().st_size} bytes)" if partial.is_file() else ""
        say(f"{name}: downloading {p.url}{resume}")
    try:
        path = Path(
            pooch.retrieve(p.url, known_hash=p.expected, fname=p.archive.name, path=folder, downloader=downloader)
        )
    except DownloadError as e:
        if "broke off" in str(e):
            raise FetchError(f"{name}: {e}") from e
        raise FetchError(
            f"{name}: {e}; to fetch it by hand, download {p.archive.name} from {p.url} (or {source(name).homepage}) "
            f"and run: python -m datasets fetch {name} --from {p.archive.name} --to {to}"
        ) from e
    except ValueError as e:  # pooch: the hash does not match (the download was deleted)
        got = re.search(r"got '?([0-9a-f]+)", str(e))
        got_text = got.group(1) if got else "another value"
        alg = p.expected.split(":", 1)[0] if p.expected else "sha256"
        hint = f"; if the file changed on purpose, pass --sha256 {got_text}" if alg == "sha256" and got else ""
        raise FetchError(
            f"{name}: {p.archive.name} from {p.url} has {alg} {got_text}, expected {_sha256_of(p.expected or ':')} "
            f"({p.why}); the download was deleted and {to} left as it was{hint}"
        ) from e
    return path


def _verify_local(name: str, path: Path, expected: str | None, why: str, to: Path) -> str:
    """Check an archive on disk against `expected`; returns its hash (in `expected`'s algorithm, else sha256)."""
    got = _hash(path, expected)
    if expected and got.lower() != expected.lower():
        alg = expected.split(":", 1)[0]
        raise FetchError(
            f"{name}: {path} has {alg} {_sha256_of(got)}, expected {_sha256_of(expected)} ({why}); {to} left as it was"
        )
    return got


def install(src: Source, archives: list[tuple[Path, str, str | None]], to: Path, progress: bool) -> tuple[int, dict]:
    """Unpack `archives` ((path, hash, url) each) into `to` atomically; returns (pairs found, marker)."""
    adapter = get_adapter(src.name)
    with atomic_dir(to) as tmp:
        written: list[str] = []
        for path, _, _ in archives:
            written += extract(path, tmp, src.single_copy_of, progress)
        try:
            pairs = adapter.pairs(tmp)
        except DatasetError as e:
            names = ", ".join(p.name for p, _, _ in archives)
            message = f"{e}{layout_hint(tmp, src.name)}".replace(str(tmp), str(to))
            raise FetchError(
                f"{src.name}: {names} did not unpack into the layout the {src.name} adapter reads ({message}); "
                f"{to} left as it was"
            ) from e
        marker = {
            "dataset": src.name,
            "archives": [{"name": p.name, "hash": h, "url": u, "size": p.stat().st_size} for p, h, u in archives],
            "files": {rel: (tmp / rel).stat().st_size for rel in sorted(set(written))},
        }
        atomic_write_json(tmp / MARKER, marker)
    return len(pairs), marker


def _record(record_file: Path, name: str, entries: dict[str, dict], say: Callable[[str], None]) -> None:
    if not entries:
        return
    record = load_record(record_file)
    record.setdefault(name, {}).update(entries)
    atomic_write_json(record_file, record)
    for archive, e in entries.items():
        say(
            f"{name}: recorded sha256 {e['sha256']} of {archive} ({e['size']} bytes) in {record_file}: commit it; "
            "later downloads are compared with it"
        )


def _count_note(src: Source, n: int) -> str:
    expected = get_adapter(src.name).expected_pairs
    if expected is None or n == expected:
        return f"{n} pairs"
    return f"{n} pairs (warning: {src.title} has {expected}; `python -m datasets check {src.name}` says more)"


def fetch(
    name: str,
    to: str | Path | None = None,
    *,
    url: str | None = None,
    sha256: Sequence[str] = (),
    from_archives: Sequence[str | Path] = (),
    downloads: str | Path | None = None,
    record_file: str | Path = RECORD_FILE,
    progress: bool | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """Fetch dataset `name` into `to` (default ``data/raw/NAME``); returns "fetched", "up to date" or "manual".

    Raises FetchError (a UserError) with one line when it cannot: the target is then left as it was.
    """
    get_adapter(name)  # an unknown name fails here with the list of known ones
    src = source(name)
    to = Path(to) if to is not None else default_target(name)
    record_file = Path(record_file)
    progress = sys.stderr.isatty() if progress is None else progress
    if from_archives:
        paths = [Path(a) for a in from_archives]
        given = parse_sha256(sha256, name, [p.name for p in paths])
        planned = plan(src, load_record(record_file), {}, None, record_file.name)
        return _fetch_local(src, paths, planned, given, to, record_file=record_file, progress=progress, say=say)
    planned = plan(
        src, load_record(record_file), parse_sha256(sha256, name, [a.name for a in src.archives]), url, record_file.name
    )
    if not src.from_archive:
        raise FetchError(f"{name}: nothing to fetch; {manual_route(src, str(to))}")
    if not planned or not all(p.url for p in planned):  # no public URL, and no --url mirror
        marker = _marker(to)
        if marker is not None and not _intact(to, marker):
            say(f"{name}: up to date in {to} (unpacked from {', '.join(a['name'] for a in marker['archives'])})")
            return "up to date"
        say(f"{name}: cannot be downloaded by this command (no stable public URL). Nothing was fetched.")
        say(f"  how: {manual_route(src, str(to))}")
        return "manual"
    folder = Path(downloads) if downloads is not None else DOWNLOADS / name
    if _up_to_date(src, planned, to, folder, say):
        return "up to date"
    _refuse_foreign(to, name)
    got: list[tuple[Path, str, str | None]] = []
    new: dict[str, dict] = {}
    for p in planned:
        path = _download(name, p, folder, to, progress, say)
        digest = p.expected or _hash(path, None)
        got.append((path, digest, p.url))
        if p.expected is None:
            new[p.archive.name] = {"sha256": _sha256_of(digest), "size": path.stat().st_size, "url": p.url}
        else:
            say(f"{name}: {p.archive.name} verified ({digest.split(':')[0]} {p.why})")
    n, marker = install(src, got, to, progress)
    _record(record_file, name, new, say)
    say(f"{name}: {_count_note(src, n)} in {to} ({len(marker['files'])} files); next: python -m datasets check {name}")
    return "fetched"


def _up_to_date(src: Source, planned: list[Planned], to: Path, folder: Path, say: Callable[[str], None]) -> bool:
    marker = _marker(to)
    if marker is None or marker.get("dataset") != src.name:
        return False
    had = {a["name"]: a["hash"] for a in marker.get("archives", [])}
    for p in planned:
        if p.archive.name not in had or (p.expected and had[p.archive.name].lower() != p.expected.lower()):
            return False
    if _intact(to, marker):
        return False
    kept = []
    for p in planned:
        path = folder / p.archive.name
        if path.is_file():
            expected = p.expected or had[p.archive.name]
            if _hash(path, expected).lower() != expected.lower():
                say(f"warning: {src.name}: {path} no longer matches the checksum {to} was unpacked from ({expected})")
                continue
            kept.append(p.archive.name)
    checked = f"; archives verified: {', '.join(kept)}" if kept else f"; the archives are not kept in {folder}"
    say(f"{src.name}: up to date in {to} ({len(marker['files'])} files as unpacked{checked}); nothing to do")
    return True


def _fetch_local(
    src: Source,
    paths: list[Path],
    planned: list[Planned],
    given: dict[str, str],
    to: Path,
    *,
    record_file: Path,
    progress: bool,
    say: Callable[[str], None],
) -> str:
    """Verify the archives given with --from (against --sha256, the plan or the record; unknown ones are recorded)
    and unpack them; returns "fetched" or "up to date"."""
    by_name = {p.archive.name: p for p in planned}
    recorded = load_record(record_file).get(src.name, {})
    got: list[tuple[Path, str, str | None]] = []
    new: dict[str, dict] = {}
    for path in paths:
        if not path.is_file():
            raise FetchError(f"--from {path}: no such file")
        p = by_name.get(path.name)
        if path.name in given:
            expected, why = f"sha256:{given[path.name]}", "given with --sha256"
        elif p is not None:
            expected, why = p.expected, p.why
        elif path.name in recorded:
            expected, why = f"sha256:{recorded[path.name]['sha256']}", f"recorded for {path.name} in {record_file.name}"
        else:
            expected, why = None, "none known: recorded now"
        digest = _verify_local(src.name, path, expected, why, to)
        if expected is None:
            new[path.name] = {"sha256": _sha256_of(digest), "size": path.stat().st_size, "url": None}
        else:
            say(f"{src.name}: {path.name} verified ({digest.split(':')[0]} {why})")
        got.append((path, digest, None))
    marker = _marker(to)
    if marker is not None and marker.get("dataset") == src.name and not _intact(to, marker):
        if sorted((a["name"], a["hash"]) for a in marker["archives"]) == sorted((p.name, h) for p, h, _ in got):
            say(f"{src.name}: up to date in {to} (unpacked from these archives); nothing to do")
            return "up to date"
    _refuse_foreign(to, src.name)
    n, marker = install(src, got, to, progress)
    _record(record_file, src.name, new, say)
    say(
        f"{src.name}: {_count_note(src, n)} in {to} ({len(marker['files'])} files); "
        f"next: python -m datasets check {src.name} --raw {to}"
    )
    return "fetched"

"""Unpack zip, tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) and rar archives into a folder, safely.

The format comes from the file's first bytes, not its name. Every member is copied through one code
path (open the member, stream it to its place under the target), so the same rules hold for every
format: no member may leave the target (absolute paths, ``..``) and links and device files are skipped;
macOS resource forks (``__MACOSX/``, ``._*``) and ``.DS_Store``/``Thumbs.db`` are left out; a damaged
archive (bad CRC, truncated) raises :class:`ArchiveError` naming the file.

RAR: through `rarfile`. Stored (uncompressed) members are read by rarfile itself; compressed ones need
one of its backends on PATH: ``unrar``, ``unar``, ``7z`` or ``bsdtar`` (Debian: ``apt-get install
libarchive-tools``, ``unar`` or ``7zip``).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from tqdm import tqdm

from core.errors import UserError

_RAR_MAGIC = (b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00")
_JUNK_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
RAR_BACKENDS = "unrar, unar, 7z or bsdtar (Debian: apt-get install libarchive-tools, unar or 7zip)"


class ArchiveError(UserError):
    """An archive that cannot be read or holds a member that would land outside the target."""


@dataclass(frozen=True)
class Member:
    name: str  # path inside the archive, "/"-separated
    size: int
    open: Callable[[], IO[bytes]]


def kind(path: Path) -> str:
    """'zip', 'tar' or 'rar' from the file's content; ArchiveError for anything else."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise ArchiveError(f"{path}: cannot read ({e.strerror or e})") from e
    if head.startswith(_RAR_MAGIC):
        return "rar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise ArchiveError(f"{path}: not a zip, tar or rar archive")


@contextlib.contextmanager
def _zip_members(path: Path) -> Iterator[list[Member]]:
    with zipfile.ZipFile(path) as zf:
        yield [Member(i.filename, i.file_size, lambda i=i: zf.open(i)) for i in zf.infolist() if not i.is_dir()]


@contextlib.contextmanager
def _tar_members(path: Path) -> Iterator[list[Member]]:
    with tarfile.open(path) as tf:  # links, devices and folders are not copied
        yield [Member(m.name, m.size, lambda m=m: tf.extractfile(m)) for m in tf if m.isfile()]


@contextlib.contextmanager
def _rar_members(path: Path) -> Iterator[list[Member]]:
    import rarfile

    with rarfile.RarFile(path) as rf:
        yield [Member(i.filename, i.file_size, lambda i=i: rf.open(i)) for i in rf.infolist() if i.is_file()]


_READERS = {"zip": _zip_members, "tar": _tar_members, "rar": _rar_members}


def _is_junk(parts: tuple[str, ...]) -> bool:
    return parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1].lower() in _JUNK_FILES


def safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    """The member's path parts; ArchiveError when it is absolute or climbs out with ``..``."""
    path = PurePosixPath(name.replace("\\", "/"))
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if path.is_absolute() or ".." in parts or not parts or ":" in parts[0]:
        raise ArchiveError(f"{archive}: member {name!r} would be written outside the target folder; not extracting")
    return parts


def _single_copy_prefix(names: list[tuple[str, ...]], folder: str) -> tuple[str, ...] | None:
    """The shallowest path prefix ending in `folder` among the members (None if no member is under one)."""
    prefixes = {p[: p.index(folder) + 1] for p in names if folder in p[:-1]}
    return min(prefixes, key=lambda p: (len(p), p)) if prefixes else None


def extract(archive: Path, target: Path, single_copy_of: str | None = None, progress: bool = True) -> list[str]:
    """Unpack `archive` under `target` (which must exist); returns the relative paths written.

    With `single_copy_of`, only the shallowest folder of that name is unpacked (with its path) when the
    archive holds several copies; members outside every copy are unpacked as usual.
    """
    archive = Path(archive)
    fmt = kind(archive)
    written: list[str] = []
    try:
        with _READERS[fmt](archive) as members:
            _copy(members, archive, target, single_copy_of, progress, written)
    except ArchiveError:
        raise
    except Exception as e:  # noqa: BLE001 - every reader's own error type means a damaged archive
        if fmt == "rar" and type(e).__name__ in ("RarCannotExec", "RarExecError"):
            raise ArchiveError(f"{archive}: RAR archive with compressed members needs {RAR_BACKENDS}") from e
        raise ArchiveError(f"{archive}: damaged or truncated {fmt} archive ({type(e).__name__}: {e})") from e
    return written


def _copy(members: list[Member], archive: Path, target: Path, single_copy_of, progress: bool, written: list) -> None:
    parts = [safe_parts(m.name, archive) for m in members]
    keep = _single_copy_prefix(parts, single_copy_of) if single_copy_of else None
    chosen = [
        (m, p)
        for m, p in zip(members, parts, strict=True)
        if not _is_junk(p) and (keep is None or single_copy_of not in p[:-1] or p[: len(keep)] == keep)
    ]
    bar = tqdm(
        total=sum(m.size for m, _ in chosen),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"unpack {archive.name}",
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )
    with bar:
        for member, p in chosen:
            dest = target.joinpath(*p)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with member.open() as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            bar.update(member.size)
            written.append("/".join(p))

"""HTTP downloads that survive an interruption: a pooch downloader that resumes with a Range request.

pooch (`pooch.retrieve`) checks the file against its known hash, downloads into a temporary file, verifies
it and only then moves it into place; it does not resume: a broken download is deleted and starts again
from byte 0. :class:`ResumingDownloader` plugs into pooch's downloader interface and keeps the bytes it
received in ``<archive>.part`` beside the archive; the next call asks the server for the rest
(``Range: bytes=N-``, with ``If-Range`` set to the ETag or Last-Modified the first response carried, so a
file that changed on the server starts over instead of being spliced). A server that ignores ranges
answers 200 and the download starts over. Only a complete file reaches pooch's hash check.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from tqdm import tqdm

from core.errors import UserError

CHUNK = 1 << 16  # bytes per read; an interrupted read loses at most this much of what had arrived
TIMEOUT_S = 60


class DownloadError(UserError):
    """The server could not be reached, refused, or the transfer broke off; the message says what to do."""


def short_reason(err: BaseException) -> str:
    """The part of a requests/urllib3 error a person needs: "[Errno 111] Connection refused", "timed out"..."""
    text = str(err)
    m = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if m:
        return m.group(0).strip()
    m = re.search(r"(IncompleteRead\([^)]*\)|Connection broken: [^'\")]*|Read timed out|timed out)", text)
    if m:
        return m.group(0).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


class ResumingDownloader:
    """A pooch downloader (``downloader(url, output_file, pooch)``) that resumes through ``partial``.

    ``partial`` is the ``.part`` file kept between calls; ``partial + ".json"`` holds the validator
    (ETag or Last-Modified) of the response the bytes came from.
    """

    def __init__(self, partial: str | Path, progress: bool = True, timeout: float = TIMEOUT_S, label: str = ""):
        self.partial = Path(partial)
        self.meta = self.partial.with_name(self.partial.name + ".json")
        self.progress = progress
        self.timeout = timeout
        self.label = label or self.partial.name.removesuffix(".part")
        self.resumed_from = 0  # bytes already on disk when the last call started (0: a fresh download)

    def _validator(self) -> str | None:
        try:
            return json.loads(self.meta.read_text()).get("validator")
        except (OSError, ValueError):
            return None

    def _restart(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)

    def __call__(self, url: str, output_file, pooch, check_only: bool = False):  # noqa: ARG002 - pooch's signature
        import requests

        if check_only:
            return requests.head(url, timeout=self.timeout, allow_redirects=True).status_code == 200
        start = self.partial.stat().st_size if self.partial.is_file() else 0
        validator = self._validator() if start else None
        if start and not validator:
            self._restart()  # bytes of unknown origin: do not splice them onto anything
            start = 0
        headers = {"Range": f"bytes={start}-", "If-Range": validator} if start else {}
        self.resumed_from = 0
        try:
            response = requests.get(url, headers=headers, stream=True, timeout=self.timeout)
            with response:
                if response.status_code == 416:  # nothing left to send: the partial file is stale or complete
                    self._restart()
                    return self(url, output_file, pooch)
                response.raise_for_status()
                length = int(response.headers.get("Content-Length", 0)) or None
                if start and response.status_code == 206 and _range_start(response) == start:
                    mode, total = "ab", (start + length if length else None)
                    self.resumed_from = start
                else:
                    mode, total, start = "wb", length, 0
                new_validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
                self.partial.parent.mkdir(parents=True, exist_ok=True)
                if mode == "wb":
                    self.meta.write_text(json.dumps({"url": url, "validator": new_validator}))
                bar = tqdm(
                    total=total,
                    initial=start,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=self.label,
                    disable=not self.progress,
                    file=sys.stderr,
                    leave=False,
                )
                with bar, open(self.partial, mode) as fh:
                    for chunk in response.iter_content(CHUNK):
                        fh.write(chunk)
                        bar.update(len(chunk))
        except requests.exceptions.HTTPError as e:
            status = e.response.status_code if e.response is not None else "?"
            reason = e.response.reason if e.response is not None else ""
            raise DownloadError(f"{url} answered HTTP {status} {reason}".rstrip()) from e
        except requests.exceptions.RequestException as e:
            got = self.partial.stat().st_size if self.partial.is_file() else 0
            if got:
                raise DownloadError(
                    f"download of {url} broke off after {got} bytes ({short_reason(e)}); the bytes are kept in "
                    f"{self.partial}: run the same command again to resume"
                ) from e
            raise DownloadError(f"cannot download {url} ({short_reason(e)})") from e
        os.replace(self.partial, output_file)
        self.meta.unlink(missing_ok=True)
        return None


def _range_start(response) -> int | None:
    m = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None

"""Fetching an update with python-tuf's ngclient: the metadata refreshed and verified against the
trusted root, the wheel downloaded and checked against its signed length and SHA-256.

Loaded only by a locker that updates (the update agent imports it when it fetches), so a locker
without `[update]` never loads python-tuf. Every python-tuf error is turned into a refusal with
one word of reason (`expired`, `bad_signature`, `rollback`, `bad_hash`, `truncated`, ...) or,
for network trouble, `RepositoryUnavailable` (try again later).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import urllib3
from tuf.api import exceptions as tuf_errors
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from locker import __version__
from locker.domain.config import UpdateConfig
from locker.domain.update import RepositoryUnavailable, UpdateRefused, wheel_name

DOWNLOAD_TIMEOUT_S = 30.0
CHUNK_BYTES = 64 * 1024


class Fetcher(FetcherInterface):
    """ngclient's downloads over urllib3, trusting `[central] ca_file` when there is one; every
    transport error becomes a tuf DownloadError (a connection cut mid-file included)."""

    def __init__(self, ca_file: Path | None, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> None:
        self.pool = urllib3.PoolManager(
            ca_certs=str(ca_file) if ca_file is not None else None,
            headers={"User-Agent": f"locker-controller/{__version__}"},
            retries=urllib3.Retry(total=2, redirect=0, raise_on_status=False))
        self.timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            response = self.pool.request("GET", url, preload_content=False,
                                         timeout=self.timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise tuf_errors.DownloadError(f"GET {url}: {exc}") from exc
        if response.status >= 400:
            response.release_conn()
            raise tuf_errors.DownloadHTTPError(f"GET {url}: HTTP {response.status}",
                                               response.status)
        return self._chunks(url, response)

    @staticmethod
    def _chunks(url: str, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            yield from response.stream(CHUNK_BYTES)
        except urllib3.exceptions.HTTPError as exc:  # cut short, timed out
            raise tuf_errors.DownloadError(f"GET {url}: {exc}") from exc
        finally:
            response.release_conn()


def fetch_target(config: UpdateConfig, work: Path, ca_file: Path | None, version: str,
                 check_space: Callable[[int], None]) -> Path:
    """The verified wheel of `version`, downloaded into work/downloads (or found there from an
    earlier attempt, checked again). `check_space(length)` refuses before the download."""
    try:
        return _fetch(config, work, ca_file, version, check_space)
    except (UpdateRefused, RepositoryUnavailable):
        raise
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, OSError) as exc:
        raise refusal(exc) from None


def _fetch(config: UpdateConfig, work: Path, ca_file: Path | None, version: str,
           check_space: Callable[[int], None]) -> Path:
    metadata = work / "metadata"
    metadata.mkdir(parents=True, exist_ok=True)
    try:
        root = config.trusted_root.read_bytes()
    except OSError as exc:
        raise UpdateRefused("no_trusted_root", f"{config.trusted_root}: cannot read the"
                            f" trusted root metadata: {exc}") from None
    base = config.repository_url
    updater = Updater(str(metadata), f"{base}/metadata/", str(work / "downloads"),
                      f"{base}/targets/", fetcher=Fetcher(ca_file), bootstrap=root)
    updater.refresh()
    info = updater.get_targetinfo(wheel_name(version))
    if info is None:
        raise UpdateRefused("not_published", f"{wheel_name(version)} is not in the repository's"
                            " signed targets")
    custom = info.custom if isinstance(info.custom, dict) else {}
    if custom.get("version") != version:
        raise UpdateRefused("bad_metadata", f"the signed metadata says version"
                            f" {custom.get('version')!r} for {info.path}, not {version}")
    check_space(info.length)
    cached = updater.find_cached_target(info)
    return Path(cached if cached is not None else updater.download_target(info))


def refusal(exc: Exception) -> UpdateRefused | RepositoryUnavailable:
    """What a python-tuf error means for this update."""
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return UpdateRefused("expired", f"the update metadata has expired: {exc}")
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return UpdateRefused("bad_signature", "the update metadata is not signed by the keys of the"
                             f" trusted root: {exc}")
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return UpdateRefused("rollback", f"the repository went back to older metadata: {exc}")
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        text = str(exc)
        if "length" in text:
            observed, expected = _lengths(text)
            if observed is not None and expected is not None and observed < expected:
                return UpdateRefused("truncated", f"the download is shorter than signed: {text}")
            return UpdateRefused("bad_length",
                                 f"the download's length is not the signed one: {text}")
        return UpdateRefused("bad_hash", f"the download's SHA-256 is not the signed one: {text}")
    if isinstance(exc, tuf_errors.DownloadLengthMismatchError):
        return UpdateRefused("bad_length", f"the server sent more than signed: {exc}")
    if isinstance(exc, tuf_errors.RepositoryError):
        return UpdateRefused("bad_metadata", f"the update metadata does not verify: {exc}")
    if isinstance(exc, OSError) and exc.errno == 28:
        return UpdateRefused("disk_full", f"the disk filled up during the download: {exc}")
    return RepositoryUnavailable(f"{type(exc).__name__}: {exc}")


def _lengths(text: str) -> tuple[int | None, int | None]:
    numbers = [int(word) for word in text.replace(",", " ").split() if word.isdigit()]
    return (numbers[0], numbers[1]) if len(numbers) >= 2 else (None, None)

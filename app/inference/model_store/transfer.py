"""Fetching the listed files, resumable across calls and process restarts.

The bytes come from our own Range requests to the server's resolve URLs, into
<dest>/.sightline-partial/<key>.part, checked (sha256 for LFS files, the git blob id for the
rest) and renamed into place when complete. A partial file survives a failed call, a cancel and
a killed process, and the next call continues from its last byte (huggingface_hub's
snapshot_download starts such a file again from its first byte).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from app.core.cancel import CancelToken
from app.core.errors import Cancelled, DownloadError
from app.inference.model_checks import (
    INDEX_NAME,
    JSON_SHAPES,
    NATIVE_MODEL_TYPE,
    SMALL_FILE_BYTES,
    check_safetensors_file,
    git_blob_sha1,
    parse_index,
    same_version,
)
from app.inference.model_store.folder import DOWNLOAD_COMMAND, REMOTE_CODE_MODEL_TYPES, FolderReport
from app.inference.model_store.hub import NETWORK_TIMEOUT_S, RemoteFile, import_hub
from app.inference.model_store.progress import DownloadProgress, human_size
from app.inference.model_store.record import HEX40, PARTIAL_DIR_NAME, read_marker, write_marker

CHUNK_BYTES = 256 * 1024
#: first wait before retrying a dropped connection; doubles per failure without progress
RETRY_BASE_S = 1.0
_PAUSED_SENTENCE = f"Download paused. Run {DOWNLOAD_COMMAND} to continue where it left off."

log = logging.getLogger(__name__)


class _Transient(Exception):
    """A dropped connection or a server hiccup: worth retrying from the bytes we have."""

    def __init__(self, detail: str, *, progressed: bool = False):
        super().__init__(detail)
        self.progressed = progressed


class _Hash:
    """sha256 of a partial file, kept in step with its bytes across retries."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.h = hashlib.sha256()
        self.upto = 0

    def update(self, data: bytes) -> None:
        self.h.update(data)
        self.upto += len(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _blob_sha1_of(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _partial_name(rf: RemoteFile) -> str:
    if rf.sha256:  # content-addressed: safe to resume even if the revision moved on
        return f"{rf.sha256}.part"
    key = hashlib.sha256(f"{rf.path}\n{rf.blob_id}\n{rf.size}".encode()).hexdigest()[:40]
    return f"{key}.part"


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    return int(m.group(1)) if m else None


def _etag(value: str | None) -> str:
    """The bare hash in an ETag header: W/"abc" and "abc" -> abc."""
    value = (value or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"').lower()


def write_failed(dest: Path, exc: OSError) -> DownloadError:
    if exc.errno == errno.ENOSPC:
        sentence = (
            f"The disk holding {dest} is full. The part already downloaded is kept: free some space, "
            f"then run {DOWNLOAD_COMMAND} to resume."
        )
    else:
        sentence = f"Sightline could not write the model into {dest}: {exc.strerror or exc}."
    return DownloadError(sentence, detail=repr(exc))


def _mismatch_error(rf: RemoteFile, detail: str) -> DownloadError:
    return DownloadError(
        f"The downloaded file {rf.path} did not match the model server's checksum. "
        f"Run {DOWNLOAD_COMMAND} to try again.",
        detail=detail,
    )


class DownloadJob:
    def __init__(
        self,
        dest: Path,
        files: list[RemoteFile],
        *,
        repo_id: str,
        revision: str,
        sha: str,
        endpoint: str,
        progress: Callable[[DownloadProgress], None] | None,
        cancel: CancelToken | None,
        retries: int,
        revision_name: str | None = None,
    ) -> None:
        self.dest = dest
        self.partial_dir = dest / PARTIAL_DIR_NAME
        self.files = files
        self.repo_id = repo_id
        self.revision = revision
        #: the named revision (refs/pr/70) recorded in the marker; `revision` may be its pinned commit
        self.revision_name = revision_name or revision
        self.sha = sha
        self.endpoint = endpoint
        self.progress = progress
        self.cancel = cancel
        self.retries = max(0, retries)
        self.bytes_total = sum(f.size for f in files)
        self.completed_bytes = 0
        self.files_done = 0
        self.offsets: dict[str, int] = {}
        self.resumed_bytes = 0
        self.fetched_bytes = 0
        #: small files already fetched (and checked) into memory before the selection was known
        self.prefetched: dict[str, bytes] = {}
        #: the ETag each resolve answer carried (the git blob id of a small file, sha256 of LFS)
        self.etags: dict[str, str] = {}
        self.opener = urllib.request.build_opener()
        self.token = self._token()
        self.marker = read_marker(dest)

    def _token(self) -> str:
        try:
            return import_hub().get_token() or ""
        except Exception:  # no token store: anonymous downloads are fine for a public model
            return ""

    def select(self, files: list[RemoteFile]) -> None:
        self.files = files
        self.bytes_total = sum(f.size for f in files)

    # -- bookkeeping --------------------------------------------------------------------------

    @property
    def bytes_done(self) -> int:
        return self.completed_bytes + sum(self.offsets.values())

    def report(self, rf: RemoteFile, file_done: int, phase: str = "downloading") -> None:
        if self.progress is not None:
            self.progress(
                DownloadProgress(
                    bytes_done=self.bytes_done,
                    bytes_total=self.bytes_total,
                    file=rf.path,
                    file_bytes_done=file_done,
                    file_bytes_total=rf.size,
                    files_done=self.files_done,
                    files_total=len(self.files),
                    resumed_bytes=self.resumed_bytes,
                    phase=phase,
                )
            )

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled(_PAUSED_SENTENCE)

    def record(self, rf: RemoteFile) -> None:
        """Note a file as checked against the server's hash, with the version of it on disk."""
        st = (self.dest / rf.path).stat()
        entry: dict[str, object] = {
            "size": rf.size,
            "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns,
            "checked": True,
        }
        if rf.sha256:
            entry["sha256"] = rf.sha256
        blob_id = self.expected_blob_id(rf)
        if blob_id:
            entry["oid"] = blob_id
        files = self.marker.setdefault("files", {})
        previous = files.get(rf.path)
        if blob_id and isinstance(previous, dict) and previous.get("shape_ok") == blob_id:
            entry["shape_ok"] = blob_id  # the same content passed the structure checks before
        files[rf.path] = entry
        damaged = self.marker.get("damaged")
        if isinstance(damaged, dict):
            damaged.pop(rf.path, None)
        self.save_marker()

    def save_marker(self, complete: bool = False) -> None:
        self.marker.update(
            {
                "repo_id": self.repo_id,
                "revision": self.revision_name,
                "commit": self.sha,
                "total_bytes": self.bytes_total,
                "file_count": len(self.files),
                "complete": complete,
            }
        )
        if complete:
            self.marker["completed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        else:
            self.marker.pop("completed_at", None)
        write_marker(self.dest, self.marker)

    def expected_blob_id(self, rf: RemoteFile) -> str:
        """The git blob id a small file must hash to: from the listing, else the resolve ETag."""
        if rf.sha256:
            return rf.blob_id
        if HEX40.fullmatch(rf.blob_id):
            return rf.blob_id
        etag = self.etags.get(rf.path, "")
        return etag if HEX40.fullmatch(etag) else ""

    def content_ok(self, rf: RemoteFile, path: Path, hasher: _Hash | None = None) -> bool:
        """Does the file hold what the server listed? sha256 for LFS files, git blob id for the rest."""
        if rf.sha256:
            if hasher is None:
                hasher = _Hash()
                self.hash_file(path, rf, hasher, rf.size)
            return hasher.hexdigest() == rf.sha256
        blob_id = self.expected_blob_id(rf)
        return not blob_id or git_blob_sha1(path) == blob_id

    # -- what is already here -----------------------------------------------------------------

    def hash_file(self, path: Path, rf: RemoteFile, hasher: _Hash, upto: int) -> None:
        """Feed bytes [hasher.upto, upto) of `path` into `hasher`, cancel-aware."""
        with open(path, "rb") as f:
            f.seek(hasher.upto)
            while hasher.upto < upto:
                self.check_cancel()
                block = f.read(min(8 << 20, upto - hasher.upto))
                if not block:
                    break
                hasher.update(block)
                self.report(rf, hasher.upto, phase="checking")

    def trusted(self, rf: RemoteFile) -> bool:
        """A weight file this download checked earlier and that has not changed since (not even
        its ctime) and that no deep verify found damaged: not worth hashing gigabytes again."""
        entry = self.marker.get("files", {}).get(rf.path)
        damaged = self.marker.get("damaged")
        return (
            bool(rf.sha256)
            and isinstance(entry, dict)
            and entry.get("checked") is True
            and entry.get("sha256") == rf.sha256
            and same_version(entry, self.dest / rf.path)
            and not (isinstance(damaged, dict) and rf.path in damaged)
        )

    def already_complete(self, rf: RemoteFile) -> bool:
        final = self.dest / rf.path
        try:
            st = final.stat()
        except OSError:
            return False
        if not final.is_file() or st.st_size != rf.size:
            return False
        if self.trusted(rf):
            return not rf.path.endswith(".safetensors") or check_safetensors_file(final) is None
        # everything else is hashed: small files every time (cheap), weights once after a change
        ok = self.content_ok(rf, final)
        if ok:
            self.record(rf)
        else:
            log.warning("%s does not match the server's checksum: fetching it again", rf.path)
        return ok

    def partial_size(self, rf: RemoteFile) -> int:
        try:
            return (self.partial_dir / _partial_name(rf)).stat().st_size
        except OSError:
            return 0

    def bytes_needed(self) -> int:
        """Cheap estimate of the bytes still to fetch (no hashing)."""
        needed = 0
        for rf in self.files:
            final = self.dest / rf.path
            if rf.path in self.prefetched or (final.is_file() and final.stat().st_size == rf.size):
                continue
            needed += max(0, rf.size - min(self.partial_size(rf), rf.size))
        return needed

    # -- fetching -----------------------------------------------------------------------------

    def resolve_url(self, rf: RemoteFile) -> str:
        return f"{self.endpoint}/{self.repo_id}/resolve/{self.sha}/{quote(rf.path, safe='/')}"

    def open_resolve(self, rf: RemoteFile, offset: int, on_416: Callable[[], None]):
        req = urllib.request.Request(
            self.resolve_url(rf), headers={"User-Agent": "Sightline", "Accept-Encoding": "identity"}
        )
        if offset:
            req.add_header("Range", f"bytes={offset}-")
        if self.token:
            # unredirected: the token goes to the hub, never to the storage host it redirects to
            req.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            resp = self.opener.open(req, timeout=NETWORK_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            if status == 416:  # the server disagrees about what we hold: start this file again
                on_416()
                raise _Transient("HTTP 416 for a resumed range") from None
            if status in (408, 429) or status >= 500:
                raise _Transient(f"HTTP {status}") from None
            if status == 404:
                raise DownloadError(
                    f"The file {rf.path} was not found on the model server.", detail=self.resolve_url(rf)
                ) from None
            raise DownloadError(
                f"The model server refused the file {rf.path} with error {status}.",
                detail=self.resolve_url(rf),
            ) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, refused, reset, timeout
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        etag = _etag(resp.headers.get("X-Linked-Etag") or resp.headers.get("ETag"))
        if etag:
            self.etags[rf.path] = etag
        return resp

    def fetch_range(self, rf: RemoteFile, part: Path, offset: int, hasher: _Hash) -> None:
        def restart() -> None:
            part.unlink(missing_ok=True)
            hasher.reset()

        resp = self.open_resolve(rf, offset, restart)
        with resp:
            if resp.status == 206:
                start = _content_range_start(resp.headers.get("Content-Range"))
                if start != offset:
                    restart()
                    self.offsets[rf.path] = 0
                    raise _Transient(f"server resumed at {start}, not {offset}")
            elif resp.status == 200:
                if offset:  # the server ignored the Range header: start this file again
                    restart()
                    offset = 0
                    self.offsets[rf.path] = 0
            else:
                raise _Transient(f"unexpected HTTP {resp.status}")

            progressed = False
            try:
                f = open(part, "ab")  # noqa: SIM115 - closed by the with below; open errors differ
            except OSError as exc:
                raise write_failed(self.dest, exc) from exc
            with f:
                while offset < rf.size:
                    if self.cancel is not None and self.cancel.cancelled:
                        raise Cancelled(_PAUSED_SENTENCE)
                    try:
                        chunk = resp.read(min(CHUNK_BYTES, rf.size - offset))
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Transient(f"{type(exc).__name__}: {exc}", progressed=progressed) from None
                    if not chunk:
                        raise _Transient("the connection closed early", progressed=progressed)
                    try:
                        f.write(chunk)
                    except OSError as exc:
                        raise write_failed(self.dest, exc) from exc
                    hasher.update(chunk)
                    offset += len(chunk)
                    self.fetched_bytes += len(chunk)
                    self.offsets[rf.path] = offset
                    progressed = True
                    self.report(rf, offset)
                try:
                    f.flush()
                    os.fsync(f.fileno())
                except OSError as exc:
                    raise write_failed(self.dest, exc) from exc

    def retry_wait(self, rf: RemoteFile, exc: _Transient, failures: int) -> None:
        log.info("download of %s interrupted (%s), failure %d", rf.path, exc, failures)
        if failures > self.retries:
            raise DownloadError(
                "The download was interrupted: the connection to the model server was lost. "
                f"What was downloaded is kept; run {DOWNLOAD_COMMAND} to resume.",
                detail=f"{rf.path}: {exc}",
            ) from None
        wait = RETRY_BASE_S * (2 ** (failures - 1))
        if self.cancel is not None and self.cancel.wait(min(wait, 30.0)):
            raise Cancelled(_PAUSED_SENTENCE) from None
        if self.cancel is None:
            time.sleep(min(wait, 30.0))

    def download_file(self, rf: RemoteFile) -> None:
        part = self.partial_dir / _partial_name(rf)
        final = self.dest / rf.path
        data = self.prefetched.pop(rf.path, None)
        if data is not None:  # fetched and checked before the shards were chosen
            try:
                with open(part, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise write_failed(self.dest, exc) from exc
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)
            return
        hasher = _Hash()
        failures = 0
        while True:
            self.check_cancel()
            offset = part.stat().st_size if part.exists() else 0
            if offset > rf.size or offset < hasher.upto:
                part.unlink(missing_ok=True)
                hasher.reset()
                offset = 0
            self.offsets[rf.path] = offset
            if rf.sha256 and hasher.upto < offset:
                self.hash_file(part, rf, hasher, offset)
            if offset < rf.size:
                try:
                    self.fetch_range(rf, part, offset, hasher)
                except _Transient as exc:
                    failures = 1 if exc.progressed else failures + 1
                    self.retry_wait(rf, exc, failures)
                    continue
            size = part.stat().st_size
            if size != rf.size or not self.content_ok(rf, part, hasher if rf.sha256 else None):
                # corrupted on the way (or a server that changed the file): never installed
                part.unlink(missing_ok=True)
                hasher.reset()
                self.offsets[rf.path] = 0
                failures += 1
                log.warning("download of %s did not match its checksum or size", rf.path)
                if failures > self.retries:
                    raise _mismatch_error(rf, f"size {size}, expected {rf.size}")
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)
            return

    def peek(self, rf: RemoteFile) -> bytes:
        """The content of a small file before anything is written: the copy on disk when it
        matches the server's checksum, else fetched into memory (checked, retried) and kept
        for run() to install."""
        final = self.dest / rf.path
        try:
            if final.is_file() and final.stat().st_size == rf.size and self.content_ok(rf, final):
                return final.read_bytes()
        except OSError:
            pass
        if rf.size > SMALL_FILE_BYTES:
            raise DownloadError(
                f"The model server lists {rf.path} at {human_size(rf.size)}, far larger than such a file "
                "can be, so Sightline did not fetch it.",
                detail=f"{self.repo_id}@{self.sha}",
            )
        failures = 0
        while True:
            self.check_cancel()
            try:
                resp = self.open_resolve(rf, 0, lambda: None)
                with resp:
                    if resp.status != 200:
                        raise _Transient(f"unexpected HTTP {resp.status}")
                    try:
                        data = resp.read(rf.size + 1)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Transient(f"{type(exc).__name__}: {exc}") from None
            except _Transient as exc:
                failures += 1
                self.retry_wait(rf, exc, failures)
                continue
            expected = self.expected_blob_id(rf)
            if len(data) == rf.size and (
                (rf.sha256 and hashlib.sha256(data).hexdigest() == rf.sha256)
                or (not rf.sha256 and (not expected or _blob_sha1_of(data) == expected))
            ):
                self.fetched_bytes += len(data)
                self.prefetched[rf.path] = data
                return data
            failures += 1
            log.warning("download of %s did not match its checksum or size", rf.path)
            if failures > self.retries:
                raise _mismatch_error(rf, f"size {len(data)}, expected {rf.size}")

    def check_config(self, data: bytes) -> None:
        """Refuse a revision whose config is not the native format before fetching gigabytes."""
        try:
            config = json.loads(data.decode("utf-8-sig"))
            model_type = str(config.get("model_type", "")) if isinstance(config, dict) else ""
        except (ValueError, UnicodeDecodeError, RecursionError):
            model_type = ""
        if model_type != NATIVE_MODEL_TYPE:
            self.prefetched.pop("config.json", None)
            what = (
                "the remote-code version of Phi-4-multimodal"
                if model_type in REMOTE_CODE_MODEL_TYPES
                else f"a model of the kind {model_type!r}"
                if model_type
                else "no model configuration Sightline can read"
            )
            raise DownloadError(
                f"The model version {self.revision_name} holds {what}, which Sightline does not run, "
                f"so nothing more was downloaded. Run {DOWNLOAD_COMMAND} without a revision to fetch "
                "the native-format version.",
                detail=f"model_type {model_type!r}",
            )

    def select_weights(self, index_rf: RemoteFile | None) -> list[str]:
        """The weight shards to fetch: exactly those the index names (other shards in the
        revision, such as the remote-code format's, are never fetched)."""
        listed = {rf.path for rf in self.files}
        if index_rf is None:
            if "model.safetensors" in listed:
                return ["model.safetensors"]
            raise DownloadError(
                f"The model version {self.revision_name} on the server has no weights index "
                f"({INDEX_NAME}), so Sightline cannot tell which weight files to fetch.",
                detail=f"{self.repo_id}@{self.sha}",
            )
        data = self.peek(index_rf)
        try:
            index = json.loads(data.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            index = None
        weight_map, _total, problem = parse_index(index)
        if problem is not None or weight_map is None:
            self.prefetched.pop(INDEX_NAME, None)
            raise DownloadError(
                f"The model's weights index on the server is damaged: it {problem or 'is not valid JSON'}. "
                "Downloading again will not help; try again later.",
                detail=f"{self.repo_id}@{self.sha}",
            )
        shards = sorted(set(weight_map.values()))
        absent = [s for s in shards if s not in listed]
        if absent:
            self.prefetched.pop(INDEX_NAME, None)
            raise DownloadError(
                f"The model's weights index on the server names {len(absent)} weight files the server "
                f"does not have, such as {absent[0]}. Downloading again will not help; try again later.",
                detail=f"{self.repo_id}@{self.sha}",
            )
        return shards

    def note_shapes_checked(self, report: FolderReport) -> None:
        """Record which small files' content passed the structure checks, so later checks of
        the same bytes need only hash them."""
        damaged = set(report.damaged_files)
        changed = False
        for rf in self.files:
            entry = self.marker.get("files", {}).get(rf.path)
            if rf.path in JSON_SHAPES and rf.path not in damaged and isinstance(entry, dict):
                oid = entry.get("oid")
                if oid and not rf.sha256 and entry.get("shape_ok") != oid:
                    entry["shape_ok"] = oid
                    changed = True
        if changed:
            write_marker(self.dest, self.marker)

    def run(self) -> None:
        # config.json first, then what was already fetched to choose the shards (the index),
        # then the small files, the weights last
        order = sorted(
            self.files, key=lambda f: (f.path != "config.json", f.path not in self.prefetched, f.size, f.path)
        )
        self.resumed_bytes = sum(min(self.partial_size(rf), rf.size) for rf in order)
        self.save_marker()
        for rf in order:
            self.check_cancel()
            if rf.path not in self.prefetched and self.already_complete(rf):
                self.offsets.pop(rf.path, None)
            else:
                self.download_file(rf)
                self.offsets.pop(rf.path, None)
                self.record(rf)
            self.completed_bytes += rf.size
            self.files_done += 1
            self.report(rf, rf.size)
        keep = {_partial_name(rf) for rf in self.files}
        for stale in self.partial_dir.glob("*.part"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
        self.save_marker(complete=True)

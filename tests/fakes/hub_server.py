"""A hub-shaped mirror of a local folder, served on 127.0.0.1 for download tests.

It answers what huggingface_hub and Sightline's downloader ask for:
  GET  /api/models/{repo}/revision/{rev}          -> {"id", "sha", "siblings"}
  GET  /api/models/{repo}/tree/{rev}[?recursive=]  -> [{type, path, size, oid, lfs?}]
  HEAD/GET /{repo}/resolve/{rev}/{path}            -> X-Repo-Commit, ETag, true Content-Length,
                                                      Range -> 206 + Content-Range
Knobs: cut a file's body after N bytes (an interrupted connection), corrupt a file in transit
(same size, one byte changed), be down (drop every connection), publish a new commit and move the
named revisions to it (add_commit), and a log of every request with the bytes it was sent.

Also here: tiny safetensors writers and model-folder builders (native and remote-code layouts)
for tests that need a folder without torch.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@dataclass
class RequestRecord:
    method: str
    path: str  # URL path, unquoted
    range: str | None  # the Range header as sent
    status: int
    body_bytes: int  # bytes of body actually sent


@dataclass
class _Entry:
    path: str
    size: int
    blob_id: str
    sha256: str
    lfs: bool


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _scan(folder: Path) -> dict[str, _Entry]:
    entries = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(folder).as_posix()
        data = p.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        lfs = rel.endswith(LFS_SUFFIXES)
        if lfs:
            pointer = (
                f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n"
            ).encode()
            blob_id = _git_blob_id(pointer)
        else:
            blob_id = _git_blob_id(data)
        entries[rel] = _Entry(rel, len(data), blob_id, sha256, lfs)
    return entries


class FakeHub:
    """Serve `folder` as model repository `repo_id` at every name in `revisions`.

    Use as a context manager, or call start()/stop(). `max_lifetime_s` bounds the server: it
    shuts itself down after that long even if a test forgets to stop it.
    """

    def __init__(
        self,
        folder: Path,
        *,
        repo_id: str = "microsoft/Phi-4-multimodal-instruct",
        revisions: tuple[str, ...] = ("main", "refs/pr/70"),
        max_lifetime_s: float = 120.0,
    ) -> None:
        self.folder = Path(folder)
        self.repo_id = repo_id
        #: every commit served: sha -> (folder, entries); the first one is also self.sha/entries
        self.commits: dict[str, tuple[Path, dict[str, _Entry]]] = {}
        self.revisions: dict[str, str] = {}
        self.sha = self.add_commit(self.folder, move=revisions)
        self.entries = self.commits[self.sha][1]
        self.max_lifetime_s = max_lifetime_s
        self.down = False
        self.requests: list[RequestRecord] = []
        self._cuts: dict[str, list[int]] = {}  # path -> [bytes to send before cutting, times left]
        self._corrupt: dict[str, int] = {}  # path -> GETs left that are corrupted in transit
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # -- knobs --------------------------------------------------------------------------------

    def add_commit(self, folder: Path, *, move: tuple[str, ...] = ("main", "refs/pr/70")) -> str:
        """Serve `folder` as a commit of its own and point the named revisions at it; returns its sha."""
        entries = _scan(Path(folder))
        listing = "\n".join(f"{e.path} {e.blob_id}" for e in entries.values())
        sha = hashlib.sha1(listing.encode()).hexdigest()
        self.commits[sha] = (Path(folder), entries)
        self.revisions[sha] = sha
        for name in move:
            self.revisions[name] = sha
        return sha

    def corrupt(self, path: str, times: int = 1) -> None:
        """The next `times` GETs of `path` send a same-size body with one byte changed."""
        with self._lock:
            self._corrupt[path] = times

    def _take_corrupt(self, path: str) -> bool:
        with self._lock:
            left = self._corrupt.get(path, 0)
            if left <= 0:
                return False
            self._corrupt[path] = left - 1
            return True

    def cut_after(self, path: str, nbytes: int, times: int = 1) -> None:
        """The next `times` GETs of `path` send `nbytes` of body, then drop the connection."""
        with self._lock:
            self._cuts[path] = [nbytes, times]

    def _take_cut(self, path: str) -> int | None:
        with self._lock:
            cut = self._cuts.get(path)
            if not cut or cut[1] <= 0:
                return None
            cut[1] -= 1
            return cut[0]

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    def file_requests(self, path: str, method: str = "GET", *, sha: str | None = None) -> list[RequestRecord]:
        suffix = f"/resolve/{sha or self.sha}/{path}"
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub", daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime_s, self._server.shutdown)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format, *args) -> None:  # noqa: A002 - keep test output quiet
        pass

    def _send_json(self, status: int, obj, *, error_code: str | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if error_code:
            self.send_header("X-Error-Code", error_code)
            self.send_header("X-Error-Message", obj.get("error", "") if isinstance(obj, dict) else "")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.hub.record(RequestRecord(self.command, self._path(), None, status, len(body)))

    def _path(self) -> str:
        return unquote(urlsplit(self.path).path)

    def _drop(self) -> None:
        self.hub.record(RequestRecord(self.command, self._path(), self.headers.get("Range"), 0, 0))
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self.hub.down:
            return self._drop()
        raw_path = urlsplit(self.path).path
        hub = self.hub
        repo = re.escape(hub.repo_id)
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", raw_path)
        if m:
            if unquote(m.group(1)) != hub.repo_id:
                return self._send_json(404, {"error": "Repository not found"}, error_code="RepoNotFound")
            rev = unquote(m.group(2))
            if rev not in hub.revisions:
                return self._send_json(404, {"error": "Invalid rev id"}, error_code="RevisionNotFound")
            sha = hub.revisions[rev]
            siblings = [{"rfilename": e.path} for e in hub.commits[sha][1].values()]
            return self._send_json(
                200,
                {
                    "id": hub.repo_id,
                    "modelId": hub.repo_id,
                    "sha": sha,
                    "private": False,
                    "siblings": siblings,
                },
            )
        # the revision and the sub-path arrive percent-encoded (refs%2Fpr%2F70)
        m = re.fullmatch(rf"/api/models/{repo}/tree/([^/]+)(/[^/]+)?", raw_path)
        if m:
            rev = unquote(m.group(1))
            if rev not in hub.revisions:
                return self._send_json(404, {"error": "Invalid rev id"}, error_code="RevisionNotFound")
            under = unquote(m.group(2) or "").strip("/")
            recursive = re.search(r"recursive=(true|True|1)", self.path) is not None
            return self._send_json(200, self._tree(hub.commits[hub.revisions[rev]][1], under, recursive))
        m = re.fullmatch(rf"/{repo}/resolve/([^/]+)/(.+)", unquote(raw_path))
        if m:
            return self._resolve(m.group(1), m.group(2))
        return self._send_json(404, {"error": "not found"})

    def _tree(self, entries: dict[str, _Entry], under: str, recursive: bool) -> list[dict]:
        out: list[dict] = []
        dirs: set[str] = set()
        prefix = f"{under}/" if under else ""
        for e in entries.values():
            if not e.path.startswith(prefix):
                continue
            rest = e.path[len(prefix) :]
            parts = rest.split("/")
            for i in range(1, len(parts)):
                if recursive or i == 1:
                    dirs.add(prefix + "/".join(parts[:i]))
            if len(parts) > 1 and not recursive:
                continue
            item = {"type": "file", "oid": e.blob_id, "size": e.size, "path": e.path}
            if e.lfs:
                item["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": 134}
            out.append(item)
        for d in sorted(dirs):
            out.append(
                {"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
            )
        return out

    def _resolve(self, rev: str, path: str) -> None:
        hub = self.hub
        if rev not in hub.revisions:
            return self._send_json(404, {"error": "Invalid rev id"}, error_code="RevisionNotFound")
        sha = hub.revisions[rev]
        folder, entries = hub.commits[sha]
        entry = entries.get(path)
        if entry is None:
            return self._send_json(404, {"error": "Entry not found"}, error_code="EntryNotFound")
        data = (folder / path).read_bytes()
        start, end = 0, len(data) - 1
        status = 200
        range_header = self.headers.get("Range")
        if range_header:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
            if m is None or int(m.group(1)) >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                hub.record(RequestRecord(self.command, self._path(), range_header, 416, 0))
                return
            start = int(m.group(1))
            end = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
            status = 206
        body = data[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Repo-Commit", sha)
        etag = entry.sha256 if entry.lfs else entry.blob_id
        self.send_header("ETag", f'"{etag}"')
        if entry.lfs:
            self.send_header("X-Linked-Size", str(entry.size))
            self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if self.command == "HEAD":
            hub.record(RequestRecord("HEAD", self._path(), range_header, status, 0))
            return
        if body and hub._take_corrupt(path):
            middle = len(body) // 2  # same size, one byte changed: only a hash can tell
            body = body[:middle] + bytes([body[middle] ^ 0x20]) + body[middle + 1 :]
        cut = hub._take_cut(path)
        if cut is not None and cut < len(body):
            self.wfile.write(body[:cut])
            self.wfile.flush()
            hub.record(RequestRecord("GET", self._path(), range_header, status, cut))
            self._drop_after_partial()
            return
        self.wfile.write(body)
        hub.record(RequestRecord("GET", self._path(), range_header, status, len(body)))

    def _drop_after_partial(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------
# building model folders without torch


def write_safetensors(path: Path, tensors: dict[str, bytes], *, metadata: dict | None = None) -> dict:
    """Write raw byte blobs as U8 tensors in the safetensors layout; returns the header dict."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, blob in tensors.items():
        header[name] = {"dtype": "U8", "shape": [len(blob)], "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in tensors.values():
            f.write(blob)
    return header


def _blob(seed: str, n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def make_model_folder(
    folder: Path, *, layout: str = "native", shard_bytes: int = 300_000, shards: int = 2
) -> Path:
    """A small model folder in the real checkpoint's layout (random bytes, not a loadable model).

    layout "native": config model_type phi4_multimodal, sharded weights + index, tokenizer,
    processor configs, vision-lora/ and speech-lora/. layout "remote_code": the hub main branch's
    shape (model_type phi4mm, auto_map, modeling_phi4mm.py).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    native = layout == "native"
    config = {
        "model_type": "phi4_multimodal",
        "architectures": ["Phi4MultimodalForCausalLM"],
        "hidden_size": 3072,
        "num_hidden_layers": 32,
        "num_attention_heads": 24,
        "num_key_value_heads": 8,
        "vocab_size": 200064,
        "vision_config": {"hidden_size": 1152},
        "audio_config": {"hidden_size": 1024},
    }
    if not native:
        config = {
            "model_type": "phi4mm",
            "architectures": ["Phi4MMForCausalLM"],
            "auto_map": {"AutoConfig": "configuration_phi4mm.Phi4MMConfig"},
        }
        (folder / "modeling_phi4mm.py").write_text("# remote code\n")
        (folder / "configuration_phi4mm.py").write_text("# remote code\n")
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "generation_config.json").write_text(json.dumps({"do_sample": False}))
    weight_map = {}
    total = 0
    for i in range(1, shards + 1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        tensors = {f"model.layers.{i}.a.weight": _blob(f"{name}a", shard_bytes // 2)}
        tensors[f"model.layers.{i}.b.weight"] = _blob(f"{name}b", shard_bytes - shard_bytes // 2)
        write_safetensors(folder / name, tensors, metadata={"format": "pt"})
        for t in tensors:
            weight_map[t] = name
        total += sum(len(b) for b in tensors.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 131072}))
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"processor_class": "Phi4MultimodalProcessor"})
    )
    for adapter, r in (("vision-lora", 256), ("speech-lora", 320)):
        (folder / adapter).mkdir(exist_ok=True)
        (folder / adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": r}))
        write_safetensors(
            folder / adapter / "adapter_model.safetensors",
            {f"base_model.{adapter}.lora_A.weight": _blob(adapter, 20_000)},
        )
    (folder / "LICENSE").write_text("MIT License\n")
    (folder / "README.md").write_text("# model card\n")
    (folder / "figures").mkdir(exist_ok=True)
    (folder / "figures" / "chart.png").write_bytes(b"\x89PNG fake")
    return folder


def wait_until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class LoopbackGuard:
    """Refuses (and records) any name lookup or connection for a host other than 127.0.0.1 / ::1."""

    def __init__(self) -> None:
        self.violations: list[object] = []

    def install(self, monkeypatch) -> LoopbackGuard:
        import socket

        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        guard = self

        def allowed(address) -> bool:
            if isinstance(address, (str, bytes)):  # AF_UNIX
                return True
            return str(address[0]) in ("127.0.0.1", "::1", "localhost")

        def connect(sock, address):
            if not allowed(address):
                guard.violations.append(address)
                raise ConnectionRefusedError(f"test forbids connecting to {address!r}")
            return real_connect(sock, address)

        def connect_ex(sock, address):
            if not allowed(address):
                guard.violations.append(address)
                return 111
            return real_connect_ex(sock, address)

        real_getaddrinfo = socket.getaddrinfo

        def getaddrinfo(host, *args, **kwargs):
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name not in ("127.0.0.1", "::1", "localhost", "None", ""):
                guard.violations.append(name)
                raise socket.gaierror(socket.EAI_NONAME, f"test forbids looking up {name!r}")
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        return self

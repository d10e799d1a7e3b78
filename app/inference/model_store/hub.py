"""The model server (the Hugging Face hub or a mirror at HF_ENDPOINT): the commit a revision
points at and the files it lists, through huggingface_hub; every failure becomes a sentence."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.core.errors import DownloadError, SightlineError
from app.inference.model_store.folder import DOWNLOAD_COMMAND

NETWORK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str = ""  # the LFS oid, for large files
    blob_id: str = ""  # the git blob id (sha1 of "blob <size>\0" + content)


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def import_hub():
    # Sightline fetches the bytes itself; never let the hub library switch to its Xet transfer.
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    # No telemetry: it would also fetch a registry from the endpoint fixed when the library was
    # first imported (huggingface.co), whatever HF_ENDPOINT says now.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import huggingface_hub
    from huggingface_hub import constants

    if os.environ["HF_HUB_DISABLE_TELEMETRY"].strip().lower() in {"1", "true", "yes", "on"}:
        constants.HF_HUB_DISABLE_TELEMETRY = True
    return huggingface_hub


def _hub_error(exc: BaseException, *, repo_id: str, revision: str, endpoint: str) -> DownloadError:
    from huggingface_hub import errors as hf_errors

    host = urlsplit(endpoint).netloc or endpoint
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        sentence = (
            "Downloads are switched off on this computer because HF_HUB_OFFLINE is set. "
            f"Unset it, then run {DOWNLOAD_COMMAND} again."
        )
    elif isinstance(exc, hf_errors.RevisionNotFoundError):
        sentence = f"The model version {revision} was not found on the model server at {host}."
    elif isinstance(exc, hf_errors.GatedRepoError):
        sentence = f"The model server at {host} asks for a sign-in before it lets anyone download {repo_id}."
    elif isinstance(exc, hf_errors.RepositoryNotFoundError):
        sentence = f"The model {repo_id} was not found on the model server at {host}."
    elif isinstance(exc, hf_errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "unknown")
        sentence = (
            f"The model server at {host} answered with error {status}. "
            f"Try again later with {DOWNLOAD_COMMAND}."
        )
    else:
        sentence = (
            f"Sightline could not reach the model server at {host}. "
            f"Check the internet connection, then run {DOWNLOAD_COMMAND} again."
        )
    return DownloadError(sentence, detail=f"{type(exc).__name__}: {exc}")


def list_remote_files(
    repo_id: str, revision: str, *, endpoint: str | None = None
) -> tuple[str, list[RemoteFile]]:
    """(commit sha, every file of the repository at that commit). Raises DownloadError."""
    endpoint = endpoint or hub_endpoint()
    hub = import_hub()
    from huggingface_hub.hf_api import RepoFile

    try:
        api = hub.HfApi(endpoint=endpoint, library_name="sightline")
        info = api.model_info(repo_id, revision=revision, timeout=NETWORK_TIMEOUT_S)
        sha = str(info.sha or "")
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise DownloadError(
                f"The model server gave no valid version for {repo_id} at {revision}.", detail=repr(sha)
            )
        files = []
        for entry in api.list_repo_tree(repo_id, revision=sha, recursive=True):
            if not isinstance(entry, RepoFile):
                continue
            lfs = entry.lfs
            files.append(
                RemoteFile(
                    path=entry.path,
                    size=int(lfs.size if lfs else entry.size),
                    sha256=str(lfs.sha256) if lfs else "",
                    blob_id=str(entry.blob_id or ""),
                )
            )
    except SightlineError:
        raise
    except Exception as exc:  # the hub library raises its own and its HTTP client's errors
        raise _hub_error(exc, repo_id=repo_id, revision=revision, endpoint=endpoint) from exc
    finally:
        # The listing is done: close the hub client's pooled connection instead of leaving a
        # socket to the server open for as long as the app runs.
        from huggingface_hub.utils import close_session

        close_session()
    return sha, files

"""Where the Phi-4-multimodal weights live, whether a folder holds a usable copy, and getting one.

- folder.py: inspect_model_folder (cheap: READY / MISSING / INCOMPLETE / WRONG_FORMAT / CORRUPT,
  with the sentence a user hears) and the default folder
- manifest.py: the pinned repository, revision and commit (models/manifest.json)
- hub.py: the commit and file listing from the model server (huggingface_hub)
- transfer.py and download.py: resumable, checked download of the listed files
- verify.py: what is wrong with each file, optionally hashing every weight file
- status.py: the summary behind `sightline model status --json`
- record.py: the record of the download kept in the folder, and its partial folder
- progress.py: what a download or a deep verify reports while it runs

The checks on each file (safetensors headers, the JSON the loader reads, hashes) are in
app.inference.model_checks.
"""

from app.inference.model_checks import (
    LEFTOVER,
    MISSING,
    FileProblem,
    check_safetensors_file,
    read_safetensors_header,
)
from app.inference.model_store.download import download_model, is_wanted
from app.inference.model_store.folder import (
    DOWNLOAD_COMMAND,
    MODEL_FOLDER_NAME,
    FolderReport,
    ModelCorruptError,
    ModelState,
    default_model_folder,
    inspect_model_folder,
)
from app.inference.model_store.hub import RemoteFile, list_remote_files
from app.inference.model_store.manifest import (
    DEFAULT_REPO_ID,
    DEFAULT_REVISION,
    Manifest,
    load_manifest,
    manifest_path,
)
from app.inference.model_store.progress import DownloadProgress, human_size
from app.inference.model_store.record import MARKER_NAME, PARTIAL_DIR_NAME
from app.inference.model_store.status import model_status
from app.inference.model_store.verify import VerifyReport, verify_model_folder

__all__ = [
    "DEFAULT_REPO_ID",
    "DEFAULT_REVISION",
    "DOWNLOAD_COMMAND",
    "LEFTOVER",
    "MARKER_NAME",
    "MISSING",
    "MODEL_FOLDER_NAME",
    "PARTIAL_DIR_NAME",
    "DownloadProgress",
    "FileProblem",
    "FolderReport",
    "Manifest",
    "ModelCorruptError",
    "ModelState",
    "RemoteFile",
    "VerifyReport",
    "check_safetensors_file",
    "default_model_folder",
    "download_model",
    "human_size",
    "inspect_model_folder",
    "is_wanted",
    "list_remote_files",
    "load_manifest",
    "manifest_path",
    "model_status",
    "read_safetensors_header",
    "verify_model_folder",
]

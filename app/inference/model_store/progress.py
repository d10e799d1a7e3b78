"""What a download or a deep verify tells the person waiting: bytes, files and a spoken sentence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DownloadProgress:
    bytes_done: int
    bytes_total: int
    file: str  # relative path of the file being fetched (or checked)
    file_bytes_done: int
    file_bytes_total: int
    files_done: int
    files_total: int
    #: bytes that were already on disk when this call started (resumed, not fetched again)
    resumed_bytes: int = 0
    #: "downloading", or "checking" while data already on disk is hashed
    phase: str = "downloading"

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0

    @property
    def total(self) -> int:
        return self.bytes_total

    def sentence(self) -> str:
        """What a person hears: "Downloading the model: 42 percent, 4.7 GB of 11.1 GB." """
        verb = (
            "Checking the model files already here" if self.phase == "checking" else "Downloading the model"
        )
        percent = int(self.fraction * 100)
        return f"{verb}: {percent} percent, {human_size(self.bytes_done)} of {human_size(self.bytes_total)}."


def human_size(n: int) -> str:
    """Sizes as a person says them: 11.1 GB, 540 MB, 12 KB (decimal units)."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f} GB"
    if n >= 1_000_000:
        return f"{n / 1e6:.0f} MB"
    return f"{max(n, 0) / 1e3:.0f} KB"

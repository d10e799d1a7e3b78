"""Getting the model, as the user hears it: the notice on the first start without it, the tray's
"Download the model" entry (progress said every ten percent, chosen again to cancel), and the news
while it loads ("Loading the model.", a soft tick every few seconds, "Model ready.").

GUI thread only; the download runs through the app's TaskRunner (app/jobs/tasks.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Slot

from app.core.cancel import CancelToken
from app.core.types import ModelPhase, ModelState
from app.jobs.tasks import failure_sentence
from app.settings.schema import Settings
from app.speech.manager import Priority

log = logging.getLogger(__name__)

NOT_INSTALLED = (
    "The Phi-4 model is not installed, so Sightline reads the text on your screen with "
    "on-device text recognition. For rich descriptions and spoken questions, choose "
    "Download the model in the tray menu, or run: sightline model download."
)
NOTICE_MARKER = "model-notice-given"


class ModelSetup(QObject):
    def __init__(
        self,
        settings: Callable[[], Settings],
        say: Callable[[str, Priority], None],
        earcons,
        tray,
        tasks,
        preload: Callable[[], object],
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._settings, self._say, self.earcons = settings, say, earcons
        self._tray, self._tasks, self._preload = tray, tasks, preload
        self._download_cancel: CancelToken | None = None

    def missing(self) -> bool:
        """The local model would answer (no server, no other backend chosen) but is not here."""
        from app.inference import model_store

        settings = self._settings()
        if settings.backend not in ("auto", "local") or settings.server_url:
            return False
        return not model_store.inspect_model_folder(model_store.default_model_folder(settings)).ready

    def first_start(self) -> None:
        """Without the model: the notice (once ever; afterwards it is in the help) and the tray's
        download entry."""
        from app import paths

        if not self.missing():
            return
        marker = paths.config_dir() / NOTICE_MARKER
        if not marker.exists():
            self._say(NOT_INSTALLED, Priority.NORMAL)
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text("The model-not-installed notice was given.\n", encoding="utf-8")
            except OSError:
                log.warning("could not remember that the model notice was given", exc_info=True)
        self._tray.add_first_action(
            "action_download_model",
            "Download the model (about 12 GB)",
            "Downloads Phi-4-multimodal for rich descriptions and spoken questions. Choose again to cancel.",
            self.toggle_download,
        )

    @Slot(object)
    def on_state(self, state: ModelState) -> None:
        """The worker's news: loading the local model takes minutes, so it is said and ticks."""
        if state.phase is ModelPhase.LOADING:
            if state.local_model:
                self._say("Loading the model.", Priority.NORMAL)
                self.earcons.start_progress("loading", interval=5.0)
        else:
            self.earcons.stop_progress()
            if state.local_model:
                self._say("Model ready.", Priority.NEXT)

    @Slot(str)
    def on_load_failed(self, sentence: str) -> None:
        self.earcons.stop_progress()
        self._say(sentence, Priority.NEXT)

    def toggle_download(self) -> None:
        """Start the model download, or cancel it if it runs. Progress is said every 10%."""
        from app.inference import model_store

        if self._download_cancel is not None:
            self._download_cancel.cancel("user")
            self._say("Cancelling the download. It will continue where it stopped next time.", Priority.NOW)
            return
        self._download_cancel = token = CancelToken()
        folder = model_store.default_model_folder(self._settings())
        last = [-1]

        def progress(p) -> None:  # the download's thread: only posts to the GUI thread
            tenth = int(p.fraction * 10) if p.total else 0
            if tenth != last[0] and 0 < tenth < 10:
                self._tasks.post(self._say, f"Model download {tenth * 10} percent.", Priority.NORMAL)
            last[0] = tenth

        def done(report) -> None:
            self._download_cancel = None
            self._say(report.sentence, Priority.NEXT)
            if report.ready:
                self._preload()

        def failed(exc: BaseException) -> None:
            self._download_cancel = None
            self._say(failure_sentence(exc, "The download"), Priority.NEXT)

        self._say("Downloading the model. I will tell you every ten percent.", Priority.NOW)
        self._tasks.run(
            lambda: model_store.download_model(folder, progress=progress, cancel=token),
            done,
            failed,
            name="sightline-download",
        )

    def shutdown(self) -> None:
        if self._download_cancel is not None:
            self._download_cancel.cancel("quit")

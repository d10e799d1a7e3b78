"""The camera, played by generated video files through OpenCV: the right picture and the right advice."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from app.capture import camera
from app.core.cancel import CancelToken
from app.core.errors import Cancelled, DeviceError
from tests.fixtures import media_video as mv

DARK = "too dark"
BLURRED = "blurred"


def shot(tmp_path, scene, name="cam.avi", **kwargs):
    return camera.capture(str(mv.still_video(tmp_path / name, scene)), **kwargs)


def test_sharp_well_lit_scene_needs_no_advice(tmp_path):
    image = shot(tmp_path, mv.sharp_scene())
    assert image.source == "camera"
    assert (image.width, image.height) == (640, 480)
    assert image.note == ""
    # The colours arrive as RGB: the grey background is grey, and the picture is the scene.
    assert np.abs(image.pixels.astype(int) - mv.sharp_scene().astype(int)).mean() < 6


def test_colour_order_is_rgb(tmp_path):
    scene = np.zeros((480, 640, 3), np.uint8)
    scene[:, :, 0] = 200  # pure red in RGB
    scene[::8, :, :] = 255  # some lines so the picture is not flat
    image = shot(tmp_path, scene)
    r, g, b = image.pixels[4, 320]
    assert r > 150 and g < 60 and b < 60


def test_dark_scene_says_too_dark(tmp_path):
    image = shot(tmp_path, mv.dark_scene())
    assert DARK in image.note
    assert BLURRED not in image.note


def test_blurred_scene_says_blurred(tmp_path):
    image = shot(tmp_path, mv.blurred_scene())
    assert BLURRED in image.note
    assert DARK not in image.note


def test_warm_up_frames_are_thrown_away(tmp_path):
    # The first frames of a real webcam are dark while auto-exposure settles.
    frames = [mv.dark_scene()] * 10 + [mv.sharp_scene()] * 10
    image = camera.capture(str(mv.write_video(tmp_path / "settling.avi", frames)))
    assert image.note == ""
    assert image.pixels.mean() > 80


def test_sharpest_frame_of_the_burst_is_kept(tmp_path):
    burst = [mv.blurred_scene(sigma=4)] * 2 + [mv.sharp_scene()] + [mv.blurred_scene(sigma=4)] * 4
    frames = [mv.blurred_scene(sigma=4)] * 10 + burst
    image = camera.capture(str(mv.write_video(tmp_path / "shaky.avi", frames)), burst_frames=7)
    assert BLURRED not in image.note
    assert camera.sharpness(image.pixels) > 10 * camera.sharpness(mv.blurred_scene(sigma=4))


@pytest.mark.parametrize(
    ("scene", "advice"),
    [
        (mv.page_whole, ""),
        (mv.page_cut_right, "The right edge of the page is cut off. Move the page left."),
        (mv.page_cut_left, "The left edge of the page is cut off. Move the page right."),
        (mv.page_cut_bottom, "The bottom edge of the page is cut off. Move the page up."),
        (
            mv.page_cut_right_bottom,
            "The right and bottom edges of the page are cut off. Move the page left and up.",
        ),
        (mv.page_too_close, "The page does not fit in the picture. Hold it further away."),
    ],
)
def test_document_mode_says_which_edge_is_cut_off(tmp_path, scene, advice):
    image = shot(tmp_path, scene(), document=True)
    assert image.note == advice


def test_document_mode_for_a_camera_facing_the_user(tmp_path):
    image = shot(tmp_path, mv.page_cut_right(), document=True, mirrored=True)
    assert image.note == "The left edge of the page is cut off. Move the page right."


def test_document_mode_without_a_page(tmp_path):
    assert "cannot see a page" in shot(tmp_path, mv.sharp_scene(), document=True).note


def test_scene_mode_does_not_talk_about_pages(tmp_path):
    assert shot(tmp_path, mv.page_cut_right()).note == ""


def test_dark_page_gets_light_advice_first(tmp_path):
    dark_page = (mv.page_cut_right().astype(np.float32) * 0.1).astype(np.uint8)
    image = shot(tmp_path, dark_page, document=True)
    assert DARK in image.note and "Move the page" not in image.note


# -- faults -------------------------------------------------------------------------------------


def test_camera_gone_during_warm_up(tmp_path):
    video = mv.write_video(tmp_path / "unplugged.avi", [mv.sharp_scene()] * 4)
    with pytest.raises(DeviceError) as err:
        camera.capture(str(video))
    assert err.value.sentence == camera.GONE


def test_camera_gone_during_the_burst(tmp_path):
    video = mv.write_video(tmp_path / "unplugged.avi", [mv.sharp_scene()] * 12)  # needs 15
    with pytest.raises(DeviceError) as err:
        camera.capture(str(video))
    assert err.value.sentence == camera.GONE


def test_camera_whose_reads_fail_after_the_first_frames_is_released(tmp_path, monkeypatch):
    import cv2

    video = str(mv.still_video(tmp_path / "cam.avi", mv.sharp_scene()))
    real = cv2.VideoCapture
    released = []

    class Failing:
        """A real capture whose device vanishes after three frames."""

        def __init__(self, *args):
            self.inner = real(*args)
            self.reads = 0

        def isOpened(self):
            return self.inner.isOpened()

        def read(self):
            self.reads += 1
            return self.inner.read() if self.reads <= 3 else (False, None)

        def release(self):
            released.append(True)
            self.inner.release()

    monkeypatch.setattr(cv2, "VideoCapture", Failing)
    with pytest.raises(DeviceError) as err:
        camera.capture(video)
    assert err.value.sentence == camera.GONE
    assert released == [True]


def test_device_that_opens_but_sends_nothing_is_busy(tmp_path, monkeypatch):
    import cv2

    class Silent:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return True

        def read(self):
            return False, None

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Silent)
    monkeypatch.setattr(sys, "platform", "win32")  # no /dev/video check: straight to the device
    with pytest.raises(DeviceError) as err:
        camera.capture(0)
    assert err.value.sentence == camera.BUSY


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /dev/video*")
def test_camera_index_that_does_not_exist():
    missing = 1 + max([c.index for c in camera.list_cameras()], default=-1) + 40
    with pytest.raises(DeviceError) as err:
        camera.capture(missing)
    if camera.list_cameras():
        assert err.value.sentence.startswith(f"There is no camera {missing}")
    else:
        assert err.value.sentence == camera.NO_CAMERA


def test_list_cameras_matches_the_devices():
    cams = camera.list_cameras()
    assert all(isinstance(c, camera.CameraInfo) for c in cams)
    if sys.platform.startswith("linux"):
        import glob

        assert len(cams) <= len(glob.glob("/dev/video*"))


def test_missing_and_broken_video_files(tmp_path):
    with pytest.raises(DeviceError, match="I could not find the video file nothere.avi"):
        camera.capture(str(tmp_path / "nothere.avi"))
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF" + bytes(2000))
    with pytest.raises(DeviceError, match="broken.avi"):
        camera.capture(str(broken))


def test_unreachable_stream_says_so():
    # Port 9 on loopback: nothing listens, so the connection is refused at once.
    with pytest.raises(DeviceError) as err:
        camera.capture("http://127.0.0.1:9/video.mjpg")
    assert err.value.sentence in (
        "I could not connect to the camera stream at 127.0.0.1:9.",
        "The camera stream at 127.0.0.1:9 sent no picture.",
    )


def test_cancel_stops_the_capture_and_releases(tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        shot(tmp_path, mv.sharp_scene(), cancel=token)


def test_parse_source():
    assert camera.parse_source("0") == camera.CameraSource("index", 0, "camera 0")
    assert camera.parse_source(2).value == 2
    assert camera.parse_source("rtsp://user:pw@cam.local:554/live").label == "cam.local:554"
    assert camera.parse_source("/dev/video3").kind == "device"
    assert camera.parse_source("~/clip.mp4").kind == "file"


def test_stream_url_is_read_like_a_camera(tmp_path):
    """A network camera, played by a video served over HTTP on loopback."""
    import functools
    import http.server
    import threading

    mv.still_video(tmp_path / "live.avi", mv.dark_scene(), count=20)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))

    class Quiet(handler.func):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        image = camera.capture(f"http://127.0.0.1:{server.server_address[1]}/live.avi")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert image.source == "camera" and DARK in image.note


def test_only_a_document_capture_advises_on_the_page(tmp_path):
    video = str(mv.still_video(tmp_path / "page.avi", mv.page_cut_bottom()))
    assert camera.capture(video, document=True).note.endswith("Move the page up.")
    assert camera.capture(video).note == ""

"""Capture: screen, camera, microphone and files, each turned into an immutable ImageInput or AudioInput.

Qt-free. Modules are imported by what needs them (screen capture pulls in mss, cameras OpenCV), so
importing this package costs nothing.
"""

"""Pure image functions on numpy arrays: no paths, no HTTP, no settings.

Images are ``uint8`` arrays in OpenCV's layout: ``(h, w)`` grayscale, ``(h, w, 3)`` BGR or
``(h, w, 4)`` BGRA.
"""
import os

# OpenCV's own decoder limit, a second guard behind the header check in codec.probe. It is read
# once, when cv2 first decodes, so it must be in the environment before cv2 is imported.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", os.environ.get("IMGSRV_MAX_PIXELS", "100000000"))

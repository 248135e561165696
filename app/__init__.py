"""imgsrv: an image-processing service and batch engine built on OpenCV."""

__version__ = "1.0.0"

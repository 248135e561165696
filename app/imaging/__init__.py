"""Pure image functions on numpy arrays: no paths, no HTTP, no settings.

Images are ``uint8`` arrays in OpenCV's layout: ``(h, w)`` grayscale, ``(h, w, 3)`` BGR or
``(h, w, 4)`` BGRA.
"""

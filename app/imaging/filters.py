"""Blur, sharpen, grayscale and threshold."""
from __future__ import annotations

import cv2
import numpy as np


def blur(img: np.ndarray, kernel: int, sigma: float) -> np.ndarray:
    """Gaussian blur; ``kernel`` 0 derives the kernel size from ``sigma``."""
    if kernel == 1:
        return img
    return cv2.GaussianBlur(img, (kernel, kernel), sigmaX=sigma, sigmaY=sigma)


def sharpen(img: np.ndarray, amount: float, sigma: float, threshold: int = 0) -> np.ndarray:
    """Unsharp mask: ``img + amount * (img - blur(img, sigma))``, saturated to 0..255, where the
    difference is above ``threshold`` levels (elsewhere the pixel stays). Alpha is kept as it is."""
    if img.ndim == 3 and img.shape[2] == 4:
        out = img.copy()
        out[:, :, :3] = sharpen(img[:, :, :3], amount, sigma, threshold)
        return out
    blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma)
    out = cv2.addWeighted(img, 1.0 + amount, blurred, -amount, 0)
    if threshold > 0:
        np.copyto(out, img, where=cv2.absdiff(img, blurred) <= threshold)
    return out


def to_gray(img: np.ndarray) -> np.ndarray:
    """Single-channel luminance of any image (alpha ignored)."""
    if img.ndim == 2:
        return img
    return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


def grayscale(img: np.ndarray) -> np.ndarray:
    """Luminance; an alpha channel is kept (the result is then BGRA with equal colour channels)."""
    if img.ndim == 3 and img.shape[2] == 4:
        g = to_gray(img)
        return cv2.merge([g, g, g, img[:, :, 3]])
    return to_gray(img)


_SIMPLE = {"binary": cv2.THRESH_BINARY, "binary_inv": cv2.THRESH_BINARY_INV}
_ADAPTIVE = {"adaptive_mean": cv2.ADAPTIVE_THRESH_MEAN_C, "adaptive_gaussian": cv2.ADAPTIVE_THRESH_GAUSSIAN_C}


def threshold(img: np.ndarray, method: str, value: int, block_size: int, c: float) -> np.ndarray:
    """Black-and-white image (single channel, 0 or 255) of the image's luminance."""
    g = to_gray(img)
    if method in _SIMPLE:
        return cv2.threshold(g, value, 255, _SIMPLE[method])[1]
    if method == "otsu":
        return cv2.threshold(g, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[1]
    return cv2.adaptiveThreshold(g, 255, _ADAPTIVE[method], cv2.THRESH_BINARY, block_size, c)

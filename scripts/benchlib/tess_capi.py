"""Tesseract's engine time on a decoded image, through its C API (``libtesseract.so.5``) with ctypes.

The CLI (``tesseract IMAGE stdout``) times the whole process: start-up, model load, image decoding and
recognition. To time the engine alone, as the other engines are timed, this loads the same shared
library the Debian CLI uses, initialises one ``TessBaseAPI`` for ``eng`` once, and per page times only
``SetImage`` (raw 8-bit greyscale pixels, decoded beforehand) + ``GetUTF8Text`` with the CLI's default
page segmentation. There is no Python package of the Debian build, hence this small binding of the
five documented C functions it needs (``tesseract/capi.h``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time

LIBRARY = "libtesseract.so.5"


class TessApi:
    """One initialised ``TessBaseAPI`` (``eng``); create it after ``OMP_THREAD_LIMIT`` is set."""

    def __init__(self, lang: str = "eng") -> None:
        try:
            self.lib = ctypes.CDLL(ctypes.util.find_library("tesseract") or LIBRARY)
        except OSError as err:
            raise FileNotFoundError(f"cannot load {LIBRARY} (apt-get install tesseract-ocr): {err}") \
                from err
        lib = self.lib
        lib.TessBaseAPICreate.restype = ctypes.c_void_p
        lib.TessBaseAPIInit3.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        lib.TessBaseAPIInit3.restype = ctypes.c_int
        lib.TessBaseAPISetImage.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                            ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.TessBaseAPISetSourceResolution.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.TessBaseAPIGetUTF8Text.argtypes = [ctypes.c_void_p]
        lib.TessBaseAPIGetUTF8Text.restype = ctypes.c_void_p
        lib.TessDeleteText.argtypes = [ctypes.c_void_p]
        lib.TessBaseAPIDelete.argtypes = [ctypes.c_void_p]
        lib.TessVersion.restype = ctypes.c_char_p
        self.handle = lib.TessBaseAPICreate()
        if lib.TessBaseAPIInit3(self.handle, None, lang.encode()) != 0:
            raise FileNotFoundError(f"tesseract cannot load language `{lang}` (tesseract-ocr-{lang})")

    def version(self) -> str:
        return self.lib.TessVersion().decode()

    def read(self, grey: bytes, width: int, height: int, dpi: int) -> tuple[str, float]:
        """(text, seconds) for an 8-bit greyscale image of `width` x `height`."""
        start = time.perf_counter()
        self.lib.TessBaseAPISetImage(self.handle, grey, width, height, 1, width)
        self.lib.TessBaseAPISetSourceResolution(self.handle, dpi)
        ptr = self.lib.TessBaseAPIGetUTF8Text(self.handle)
        seconds = time.perf_counter() - start
        text = ctypes.string_at(ptr).decode("utf-8", errors="replace") if ptr else ""
        if ptr:
            self.lib.TessDeleteText(ptr)
        return text, seconds

    def close(self) -> None:
        if self.handle:
            self.lib.TessBaseAPIDelete(self.handle)
            self.handle = None


def limit_threads() -> None:
    """Tesseract's OpenMP reads this once, when the library starts: set it before loading."""
    os.environ["OMP_THREAD_LIMIT"] = "1"

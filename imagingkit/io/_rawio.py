"""Positioned reads of raw pixel blocks, shared by the TIFF, Scanbox and suite2p loaders.

Pixels of uncompressed formats sit at known byte offsets. Reading them with
positioned reads (``os.preadv``) straight into the caller's array costs one
copy, like copying out of a memory map would, but keeps the resident memory of
the process bounded by the block being read: mapped file pages would otherwise
count towards RSS until the kernel evicts them. Reads at explicit offsets share
no file position, so one reader can serve several threads.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imagingkit.errors import FileFormatError, MissingFileError

MAX_OPEN_FILES = 8


class RawReader:
    """Reads byte ranges of a fixed list of files into NumPy arrays.

    Keeps up to :data:`MAX_OPEN_FILES` file descriptors open (least recently
    used closed first); :meth:`close` closes them all.
    """

    def __init__(self, paths: Sequence[Path]):
        self.paths = tuple(Path(p) for p in paths)
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()

    def _fd(self, index: int) -> int:
        with self._lock:
            fd = self._fds.pop(index, None)
            if fd is None:
                try:
                    fd = os.open(self.paths[index], os.O_RDONLY | getattr(os, "O_BINARY", 0))
                except FileNotFoundError as exc:
                    raise MissingFileError(
                        f"{self.paths[index]}: file disappeared since it was opened"
                    ) from exc
                while len(self._fds) >= MAX_OPEN_FILES:
                    os.close(self._fds.popitem(last=False)[1])
            self._fds[index] = fd
            return fd

    def read_into(self, index: int, offset: int, out: np.ndarray) -> None:
        """Fill the C-contiguous array ``out`` with the bytes at ``offset`` of file ``index``.

        Raises
        ------
        FileFormatError
            The file ends before ``out`` is full (truncated file).
        """
        view = memoryview(out).cast("B")
        fd = self._fd(index)
        filled = 0
        while filled < len(view):
            if hasattr(os, "preadv"):
                n = os.preadv(fd, [view[filled:]], offset + filled)
            else:  # pragma: no cover - platforms without preadv (Windows)
                with self._lock:
                    os.lseek(fd, offset + filled, os.SEEK_SET)
                    n = os.readv(fd, [view[filled:]])
            if not n:
                raise FileFormatError(
                    f"{self.paths[index]}: truncated: expected {len(view)} bytes at offset {offset}, "
                    f"the file ends after {filled}"
                )
            filled += n

    def read_pages(self, file_index: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
        """Read equally sized pages into consecutive entries of ``out``.

        Runs of pages that follow each other in the same file are read with one
        call, so contiguous data streams at disk speed.

        Parameters
        ----------
        file_index, offsets : (n,) int arrays
            File and byte offset of each page, in output order.
        out : ndarray
            C-contiguous array whose first axis has ``n`` entries, one page each.
        """
        n = len(offsets)
        if n == 0:
            return
        flat = out.reshape(n, -1)
        if n == 1:
            self.read_into(int(file_index[0]), int(offsets[0]), flat)
            return
        page_nbytes = flat[0].nbytes
        breaks = np.flatnonzero((np.diff(offsets) != page_nbytes) | (np.diff(file_index) != 0)) + 1
        starts = [0, *breaks.tolist()]
        stops = [*breaks.tolist(), n]
        for start, stop in zip(starts, stops, strict=True):
            self.read_into(int(file_index[start]), int(offsets[start]), flat[start:stop])

    def __getstate__(self) -> dict:  # picklable for process pools: descriptors are reopened on demand
        return {"paths": self.paths}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["paths"])

    def close(self) -> None:
        """Close every open file descriptor."""
        with self._lock:
            while self._fds:
                os.close(self._fds.popitem()[1])

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

"""A progress bar for commands that stream a movie: shown on a terminal, silent in logs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from tqdm import tqdm


@contextlib.contextmanager
def frame_progress(n_frames: int, description: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(n_frames_done, n_frames)`` callback drawing a tqdm bar on stderr.

    The bar is drawn only when stderr is a terminal (so batch logs and captured output
    stay clean) and is removed when the step ends.

    Parameters
    ----------
    n_frames : int
        Frames the step will stream.
    description : str
        The bar's label, e.g. "registering".
    """
    with tqdm(
        total=n_frames, unit="frame", desc=description, leave=False, disable=not sys.stderr.isatty()
    ) as bar:

        def progress(n_frames_done: int, _n_frames: int) -> None:
            bar.update(n_frames_done - bar.n)

        yield progress

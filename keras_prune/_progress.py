"""One line of progress for calls that run for seconds (conversion, structured pruning)."""

import contextlib
import sys
import time


def check_verbose(verbose):
    if verbose not in (0, 1):  # True and False too
        raise ValueError(
            f"Argument `verbose` must be 0 (silent) or 1 (one progress line). "
            f"Received: verbose={verbose!r}."
        )
    return int(verbose)


class Progress:
    """Prints `title: stage 1.2 s, stage 0.3 s` on one line, stage by stage.

    A stage's name appears when it starts and its seconds when it ends, so a long
    stage shows what is running; `verbose=0` prints nothing.

    ```python
    progress = Progress("TFLite", verbose)
    with progress.stage("convert"):
        ...
    progress.done()
    ```
    """

    def __init__(self, title, verbose=1, file=None):
        self.title = title
        self.verbose = check_verbose(verbose)
        self.file = file
        self._started = False

    def _write(self, text):
        stream = self.file or sys.stdout
        stream.write(text)
        stream.flush()

    @contextlib.contextmanager
    def stage(self, name):
        if not self.verbose:
            yield
            return
        self._write(f", {name}" if self._started else f"{self.title}: {name}")
        self._started = True
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self._write(" failed\n")  # the error's own message follows on a new line
            self._started = False
            raise
        self._write(f" {time.perf_counter() - start:.1f} s")

    def done(self, summary=""):
        if self.verbose and self._started:
            self._write((f": {summary}" if summary else "") + "\n")
            self._started = False

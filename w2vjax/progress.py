"""The training progress bar: rich's, on stderr, in a terminal; plain lines otherwise.

In a terminal the bar shows the epoch, percentage, elapsed time ``<`` ETA, raw words/s, the
learning rate and the loss; it is a context manager, and leaving it (at the end, on an error
or a signal) ends the bar's line, so whatever is printed next starts on a line of its own.
Anything printed while it runs (``print``, ``logging`` to stderr) appears above it.  When
stderr is not a terminal (a log file, CI), a plain line is written every ~10 % instead.
"""

from __future__ import annotations

import sys
import time
from typing import Optional


class Progress:
    """``update(done, raw_wps, lr, loss)`` after each log step; use as ``with bar: ...``."""

    def __init__(self, total: int, stream=None, enabled: bool = True, epochs: int = 1, start: int = 0):
        self.total, self.enabled, self.epochs = max(total, 1), enabled, max(epochs, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = start
        self._next_pct = 10
        self._rich = None
        self._task: Optional[int] = None

    def __enter__(self) -> "Progress":
        if self.enabled and self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, Progress as RichProgress, TaskProgressColumn, TextColumn
            self._rich = RichProgress(  # about 78 columns: fits an 80-column terminal
                TextColumn("epoch {task.fields[epoch]}"), BarColumn(bar_width=12), TaskProgressColumn(),
                TextColumn("{task.fields[times]} {task.fields[wps]} words/s lr {task.fields[lr]} "
                           "loss {task.fields[loss]}"),
                console=Console(file=self.stream), transient=False, auto_refresh=False)
            self._t0 = time.monotonic()
            self._rich.start()
            self._task = self._rich.add_task("train", total=self.total, completed=self.start,
                                             epoch=self._epoch(self.start), times="0:00<?", wps="-",
                                             lr="-", loss="-")
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.stop()  # ends the bar's line
            self._rich = None

    def _epoch(self, done: int) -> str:
        per_epoch = self.total / self.epochs
        return f"{min(int(done // per_epoch) + 1, self.epochs)}/{self.epochs}"

    def update(self, done: int, raw_wps: float, lr: float, loss: float, final: bool = False) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            elapsed = time.monotonic() - self._t0
            rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
            eta = _clock((self.total - done) / rate) if rate > 0 else "?"
            self._rich.update(self._task, completed=min(done, self.total), epoch=self._epoch(done),
                              times=f"{_clock(elapsed)}<{eta}", wps=f"{raw_wps / 1e3:,.1f}k",
                              lr=f"{lr:.6f}", loss=f"{loss:.4f}")
            self._rich.refresh()
            return
        frac = min(done / self.total, 1.0)
        if final or 100 * frac >= self._next_pct:
            self.stream.write(f"epoch {self._epoch(done)}  {100 * frac:5.1f}%  {raw_wps / 1e3:8.1f}k words/s  "
                              f"lr {lr:.6f}  loss {loss:.4f}\n")
            self.stream.flush()
            while self._next_pct <= 100 * frac:
                self._next_pct += 10


def _clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    m, sec = divmod(int(max(seconds, 0)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"

"""Showing a long run's progress: the phase, time left, and the indicators' current values.

On a terminal, a rich Live panel redrawn in place; log records written to the terminal are
routed through rich's console so they scroll above the panel instead of breaking it. Anywhere
else (CI logs, files), plain lines: one per phase, at most one line of values every ``every_s``
seconds, no escape codes. The engine drives either through the ``ProgressSink`` protocol;
``NullProgress`` shows nothing.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TextIO, cast

from rich.console import Console, Group, RenderableType
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

BAR_WIDTH = 30


class ProgressSink(Protocol):
    """What the engine tells the display; every method returns at once and never raises."""

    def start_phase(self, name: str, seconds: float | None) -> None:
        """A phase begins; ``seconds`` is its planned length, None when it is not known."""
        ...

    def update(self, values: Mapping[str, str]) -> None:
        """The current indicator values, already formatted (``{"p99": "12 ms"}``)."""
        ...

    def log(self, message: str) -> None:
        """A line worth showing on its own, such as a fault being injected."""
        ...

    def close(self) -> None:
        """Stop showing progress and give the terminal back; safe to call twice."""
        ...


class NullProgress:
    """Shows nothing: for runs with the progress display turned off."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start_phase(self, name: str, seconds: float | None) -> None:
        pass

    def update(self, values: Mapping[str, str]) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class _Phase:
    name: str
    seconds: float | None
    start: float


class Progress:
    """The progress of run ``run_id`` planned to last ``total_s`` seconds, shown on ``stream``.

    A rich panel when ``stream`` is a terminal (``terminal`` overrides the detection), plain
    lines otherwise. ``clock`` gives monotonic seconds. Use it as a context manager: leaving it,
    on every path, Ctrl-C included, removes the panel, shows the cursor again and gives the log
    handlers and ``sys.stdout``/``sys.stderr`` their streams back.
    """

    def __init__(
        self,
        *,
        run_id: str,
        total_s: float | None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 10.0,
        terminal: bool | None = None,
        auto_refresh: bool = True,
        width: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.total_s = total_s
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.every_s = every_s
        self.terminal = _isatty(self.stream) if terminal is None else terminal
        self._auto_refresh = auto_refresh
        self._width = width
        self._started = clock()
        self._phase: _Phase | None = None
        self._values: dict[str, str] = {}
        self._values_line_at: float | None = None
        self._live: Live | None = None
        self._rerouted: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []
        self._closed = False

    def __enter__(self) -> Progress:
        self._open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start_phase(self, name: str, seconds: float | None) -> None:
        self._phase = _Phase(name, seconds, self.clock())
        if self.terminal:
            self._refresh()
        else:
            self._line(self._phase_line())

    def update(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        if self.terminal:
            self._refresh()
            return
        now = self.clock()
        due = self._values_line_at is None or now - self._values_line_at >= self.every_s
        if values and due:
            self._values_line_at = now
            self._line(self._values_line())

    def log(self, message: str) -> None:
        if self._closed:
            return
        if self.terminal:
            self._open()
            if self._live is not None:
                self._live.console.print(Text(message))
        else:
            self._line(message)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._live is not None:
                self._live.stop()
        finally:
            for handler, original in reversed(self._rerouted):
                handler.setStream(original)
            self._rerouted.clear()

    def panel(self) -> RenderableType:
        """The panel as it reads now: run, phase and run times with bars, current values."""
        now = self.clock()
        times = Table.grid(padding=(0, 2))
        times.add_column(style="bold")
        times.add_column()
        times.add_column()
        phase = self._phase
        if phase is not None:
            text, bar = _progress(now - phase.start, phase.seconds)
            times.add_row("phase", f"{phase.name}: {text}", bar)
        text, bar = _progress(now - self._started, self.total_s)
        times.add_row("run", text, bar)
        parts: list[RenderableType] = [times]
        if self._values:
            values = Table(box=None, padding=(0, 2), show_edge=False)
            values.add_column("indicator", style="cyan")
            values.add_column("now", justify="right")
            for name, value in self._values.items():
                values.add_row(name, value)
            parts += [Text(""), values]
        return Panel(Group(*parts), title=f"harness run {self.run_id}", title_align="left")

    def _open(self) -> None:
        if not self.terminal or self._live is not None or self._closed:
            return
        console = Console(file=self.stream, force_terminal=True, width=self._width)
        self._live = Live(
            console=console,
            get_renderable=self.panel,
            auto_refresh=self._auto_refresh,
            refresh_per_second=2,
            transient=True,  # the verdict table follows; a stale panel would only mislead
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._reroute_logging(console)
        self._live.start()

    def _reroute_logging(self, console: Console) -> None:
        """Log handlers writing to a terminal write through ``console``, above the panel."""
        for handler in _stream_handlers():
            stream = handler.stream
            if stream is self.stream or (_isatty(stream) and not isinstance(stream, FileProxy)):
                self._rerouted.append((handler, stream))
                handler.setStream(cast(TextIO, FileProxy(console, stream)))

    def _refresh(self) -> None:
        self._open()
        if self._live is not None and not self._closed:
            self._live.refresh()

    def _line(self, text: str) -> None:
        if self._closed:
            return
        self.stream.write(f"[{self.run_id}] {text}\n")
        self.stream.flush()

    def _phase_line(self) -> str:
        assert self._phase is not None
        planned = "" if self._phase.seconds is None else f" for {_clock(self._phase.seconds)}"
        return f"+{_clock(self.clock() - self._started)} phase {self._phase.name}{planned}" + (
            self._run_left()
        )

    def _values_line(self) -> str:
        phase = f" {self._phase.name}" if self._phase is not None else ""
        values = "; ".join(f"{name} {value}" for name, value in self._values.items())
        return f"+{_clock(self.clock() - self._started)}{phase}: {values}"

    def _run_left(self) -> str:
        if self.total_s is None:
            return ""
        left = self.total_s - (self.clock() - self._started)
        return f" ({_clock(max(0.0, left))} left in the run)"


def _progress(elapsed: float, planned: float | None) -> tuple[str, ProgressBar]:
    if planned is None or planned <= 0:
        return f"{_clock(elapsed)} elapsed", ProgressBar(total=None, width=BAR_WIDTH)
    left = planned - elapsed
    text = f"{_clock(elapsed)} elapsed, " + (
        f"{_clock(left)} left" if left >= 0 else f"{_clock(-left)} over"
    )
    bar = ProgressBar(total=planned, completed=min(elapsed, planned), width=BAR_WIDTH)
    return text, bar


def _clock(seconds: float) -> str:
    """Return ``seconds`` as ``m:ss``, or ``h:mm:ss`` from an hour."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def _stream_handlers() -> list[logging.StreamHandler[TextIO]]:
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
    ]

"""`lipapush web`: one parent loads the app once and forks the processes that serve it.

Why: a web process that dies (the OOM killer, a crash in a C extension, a SIGKILL) must be back at
once. Starting Python, importing lipapush and building its ~140 routes costs 2-3 s of CPU, which on
a loaded 2-core machine became ~20 s before the process answered again. Here the parent pays that
once; a replacement for a dead child is one `fork()` away (milliseconds, the pages are shared
copy-on-write), and the listening socket stays open in the parent the whole time, so connections
made meanwhile wait in the backlog instead of being refused.

This is gunicorn's pre-fork model. gunicorn itself is not used because it binds its own sockets and
installs its own logging: lipapush binds before any work (a busy port fails at once, with a clear
message) and its log handlers clean secrets out of every line.

The parent never opens a database connection, an event loop or a thread before it forks: each child
makes its own (engines and clients are per event loop, see core.runtime.PerLoop).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("lipapush.web")

# A child that dies sooner than this after it started is crashing on start-up (a bad setting, the
# database refusing connections): wait before the next fork instead of spinning, doubling up to MAX.
_HEALTHY_AFTER = 5.0
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0
_PR_SET_PDEATHSIG = 1


class Supervisor:
    """Keeps `workers` children running `serve()` until SIGTERM or SIGINT, then stops them."""

    def __init__(self, serve: Callable[[], None], *, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.serve = serve
        self.workers = workers
        self.children: dict[int, float] = {}  # pid -> start time (monotonic)
        self.stopping = False
        self.restarts = 0
        self._backoff = 0.0

    def run(self) -> int:
        if threading.active_count() > 1:
            # fork() copies only the calling thread: a lock another thread held stays locked forever.
            log.warning("forking with %d threads running", threading.active_count())
        # Everything loaded so far is shared with the children and never freed: keep the collector from
        # walking it (and from touching, so copying, its pages) in every child.
        gc.collect()
        gc.freeze()
        parent = os.getpid()
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for _ in range(self.workers):
                self._spawn(parent)
            while self.children:
                try:
                    pid, status = os.waitpid(-1, 0)
                except ChildProcessError:
                    break
                started = self.children.pop(pid, None)
                if started is None or self.stopping:
                    continue
                lived = time.monotonic() - started
                log.warning(
                    "web process %d ended (%s) after %.1f s; starting another",
                    pid,
                    _describe(status),
                    lived,
                )
                if lived < _HEALTHY_AFTER:
                    self._backoff = min(max(self._backoff * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
                    time.sleep(self._backoff)
                else:
                    self._backoff = 0.0
                if not self.stopping:
                    self.restarts += 1
                    self._spawn(parent)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _spawn(self, parent: int) -> None:
        pid = os.fork()
        if pid:
            self.children[pid] = time.monotonic()
            return
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _die_with(parent)
            self.serve()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("web process %d failed", os.getpid())
        finally:
            logging.shutdown()
            os._exit(code)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _die_with(parent: int) -> None:
    """A child whose parent is SIGKILLed gets SIGTERM (Linux), so no orphan keeps serving an old app."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"

"""Rate-limited warnings: a fault that repeats (a robot with a refused key retrying, a client sending garbage) is
logged at once, then at most once per period with the count of what was suppressed meanwhile."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Hashable


class LogLimiter:
    """`warning(logger, key, msg, *args)`: the first call per key logs; later calls within `period_s` of the last
    logged one are counted, and the next logged line says how many were suppressed. Thread-safe; at most `max_keys`
    keys are remembered (the oldest forgotten first), so a flood of distinct keys cannot grow it without bound."""

    def __init__(self, period_s: float = 10.0, max_keys: int = 1024):
        self.period_s, self.max_keys = period_s, max_keys
        self._last: dict[Hashable, tuple[float, int]] = {}  # key → (monotonic time logged, suppressed since)
        self._lock = threading.Lock()
        self.logged = self.suppressed = 0

    def warning(self, logger: logging.Logger, key: Hashable, msg: str, *args: Any) -> bool:
        """Log `msg % args` at WARNING unless suppressed; True if it was logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.period_s:
                self._last[key] = (last[0], last[1] + 1)
                self.suppressed += 1
                return False
            skipped = 0 if last is None else last[1]
            self._last.pop(key, None)
            self._last[key] = (now, 0)
            while len(self._last) > self.max_keys:
                self._last.pop(next(iter(self._last)))
            self.logged += 1
        if skipped:
            logger.warning(msg + " (%d more like it in the last %.0f s)", *args, skipped, self.period_s)
        else:
            logger.warning(msg, *args)
        return True

"""Route what a C library prints straight to file descriptor 2 into Python logging, in the project's format.

CycloneDDS prints its warnings from C to stderr with its own stamp, e.g.
`1796033228.978979 [77]     python: selected interface "lo" is not multicast-capable: disabling multicast`
(the unitree_sdk2py configuration sets `multicast="default"` on the chosen interface, and loopback has none). Used
around DDS domain creation only: the window is short, and anything else written to fd 2 meanwhile is re-logged too.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

_CYCLONE_PREFIX = re.compile(r"^\d+\.\d+ \[\d+\]\s+\S+:\s*")


@contextmanager
def stderr_to_log(logger: logging.Logger, what: str, level: int = logging.INFO) -> Iterator[None]:
    """Capture fd 2 for the duration of the block; each captured line is logged as `what: line`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if line.strip():
                    logger.log(level, "%s: %s", what, _CYCLONE_PREFIX.sub("", line))

"""One log format for every process and tool: `time process LEVEL message`. Python warnings are routed into it, and
third-party libraries that log at INFO or chatter on import are held at WARNING, so what a user sees is the stack's
own account of itself."""

from __future__ import annotations

import logging
import os

# Loggers of libraries we use that are noisy below WARNING (import chatter, per-call INFO lines).
QUIET = (
    "matplotlib",
    "PIL",
    "urllib3",
    "filelock",
    "fsspec",
    "httpx",
    "huggingface_hub",
    "transformers",
    "torch",
    "onnx",
    "onnxruntime",
    "numexpr",
    "asyncio",
    "OpenGL",  # PyOpenGL: "No OpenGL_accelerate module loaded" at INFO on import
)


def setup_logging(name: str, level: int = logging.INFO) -> None:
    """Configure the root logger for process `name` (replaces any earlier configuration)."""
    logging.basicConfig(level=level, format=f"%(asctime)s {name:>9} %(levelname)s %(message)s", force=True)
    for lib in QUIET:
        logging.getLogger(lib).setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings.warn(...) → logger "py.warnings", in the format above
    # transformers / tokenizers / huggingface_hub print through their own switches besides logging (read at import,
    # which comes later: the VLM process imports them when it loads the model). The "Loading weights" progress bar is
    # transformers' tqdm, off when huggingface_hub's progress bars are (transformers/utils/logging.py).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

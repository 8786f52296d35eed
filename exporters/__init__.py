"""Offline exporters: checkpoints → ONNX → engines, each with a manifest and a parity check."""

from __future__ import annotations

EXPORTER_VERSION = "0.1.0"

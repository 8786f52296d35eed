"""The config file as plain data, without pydantic: where it is, YAML parsing, `--set` overrides. edge.common.config
validates this data into its models; the e-stop command line (edge.tools.estop) reads it directly, so that an
operator's `edge estop` does not pay for pydantic's start-up (≈ 0.17 s) before the motors damp."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "sim.yaml"
DEFAULT_RUN_DIR = "/tmp/edge"  # bus.run_dir when the file does not set it


class ConfigError(ValueError):
    pass


def config_path(path: str | Path | None) -> Path:
    """The config file to use: the one given, else $EDGE_CONFIG, else configs/sim.yaml."""
    return Path(path or os.environ.get("EDGE_CONFIG") or DEFAULT_CONFIG)


def parse_overrides(items: list[str]) -> dict:
    """'navigator.execution=open_loop' → {'navigator.execution': 'open_loop'} (values parsed as YAML scalars)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. navigator.execution=open_loop), got {item!r}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({' '.join(str(e).split())})") from None
    return out


def read_yaml(path: str | Path, overrides: dict | None = None) -> dict:
    """The file's mapping with the dotted overrides applied; ConfigError (one line) if missing or not a mapping."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} (see configs/ for sim.yaml and go2.yaml)") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a YAML file: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: {key!r} is a value, not a section")
        node[leaf] = value
    return data

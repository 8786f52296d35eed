"""ONNX helpers shared by the exporters: IR version pinning, metadata, hashing, clear load errors."""

from __future__ import annotations

from pathlib import Path

from engines.manifest import sha256_file

__all__ = [
    "MAX_IR_VERSION",
    "OPSET",
    "OnnxFileError",
    "sha256_file",
    "load_onnx",
    "save_onnx",
    "write_metadata",
    "read_metadata",
    "external_data_path",
    "rename_io",
]

# onnx 1.23 writes IR 14; onnxruntime 1.28 (pyproject's pin) reads ≤ 13; TensorRT 10.3's parser is older still
# (opset ≤ 17, IR ≤ 9).
MAX_IR_VERSION = 9
OPSET = 17


class OnnxFileError(ValueError):
    """An ONNX file is missing, unreadable or not what the caller expected. The message names the file."""


def load_onnx(path: str | Path):
    """onnx.ModelProto, checked. Missing / corrupted files raise OnnxFileError naming the file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxFileError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # DecodeError, ValidationError, ...: all mean "not a usable ONNX file"
        raise OnnxFileError(f"{path}: not a valid ONNX model ({type(e).__name__}: {e})") from None
    return model


# A protobuf message cannot exceed 2 GiB: larger models keep their weights in an external-data file.
EXTERNAL_DATA_THRESHOLD = 1 << 30


def external_data_path(path: str | Path) -> Path:
    """Where save_onnx puts the weights of a large model: `<name>.onnx.data` next to it (one file; TensorRT's ONNX
    parser resolves it relative to the .onnx's folder, docs/jetson.md §2)."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def tensor_bytes(model) -> int:
    """Bytes of the model's initializers (what decides whether it fits a 2 GiB protobuf)."""
    import numpy as np

    total = 0
    for t in model.graph.initializer:
        total += len(t.raw_data) if t.raw_data else int(np.prod(t.dims)) * 4
    return total


def save_onnx(
    model, path: str | Path, ir_version: int = MAX_IR_VERSION, external_threshold: int = EXTERNAL_DATA_THRESHOLD
) -> Path:
    """Write with an IR version old enough for the pinned onnxruntime and TensorRT 10.3. A model whose weights exceed
    `external_threshold` bytes goes out as `<name>.onnx` + one `<name>.onnx.data` (never loose per-tensor files);
    the check then runs on the path, which the checker supports beyond 2 GiB."""
    import onnx

    model.ir_version = min(model.ir_version or ir_version, ir_version)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = external_data_path(path)
    data.unlink(missing_ok=True)
    if tensor_bytes(model) > external_threshold:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data.name)
        onnx.checker.check_model(str(path))
    else:
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return path


def write_metadata(model, props: dict[str, str]) -> None:
    """Set (replace) metadata_props entries in place."""
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)


def read_metadata(model_or_path) -> dict[str, str]:
    """metadata_props of a model or a file (the file's graph is parsed, its external weights are not loaded)."""
    if isinstance(model_or_path, (str, Path)):
        import onnx

        path = Path(model_or_path)
        if not path.is_file():
            raise OnnxFileError(f"ONNX file not found: {path}")
        model = onnx.load(str(path), load_external_data=False)
    else:
        model = model_or_path
    return {p.key: p.value for p in model.metadata_props}


def rename_io(model, renames: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every node reference to them) in place."""
    g = model.graph
    for v in list(g.input) + list(g.output):
        if v.name in renames:
            v.name = renames[v.name]
    for node in g.node:
        for seq in (node.input, node.output):
            for i, name in enumerate(seq):
                if name in renames:
                    seq[i] = renames[name]

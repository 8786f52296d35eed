"""PyTorch reference backend: a TorchScript file or an nn.Module behind the TensorModel interface (CPU)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from engines.runtime import TensorSpec, check_feeds


def _mlp_specs(module, input_names, output_names) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """For a single-input, single-output MLP: (batch, in) → (batch, out) from the first / last 2-D weight."""
    weights = [p for name, p in module.state_dict().items() if name.endswith("weight") and p.dim() == 2]
    if len(input_names) != 1 or len(output_names) != 1 or not weights:
        raise ValueError("cannot infer I/O shapes of this module: pass inputs=/outputs= TensorSpecs")
    f32 = np.dtype(np.float32)
    return (
        (TensorSpec(input_names[0], ("batch", int(weights[0].shape[1])), f32),),
        (TensorSpec(output_names[0], ("batch", int(weights[-1].shape[0])), f32),),
    )


class TorchModel:
    """Reference backend. `model`: a TorchScript path (`policy.jit`, legged_gym `policy_1.pt`) or an nn.Module.

    Inputs are passed positionally in `inputs` order; a tuple output is named in `outputs` order.
    threads: torch.set_num_threads(threads) (process-wide) unless None; 1 matches OrtModel's default.
    """

    backend = "torch"

    def __init__(
        self,
        model,
        input_names: tuple[str, ...] = ("obs",),
        output_names: tuple[str, ...] = ("actions",),
        inputs: tuple[TensorSpec, ...] | None = None,
        outputs: tuple[TensorSpec, ...] | None = None,
        threads: int | None = 1,
    ):
        import torch

        if isinstance(model, (str, Path)):
            self.path = Path(model)
            if not self.path.is_file():
                raise FileNotFoundError(f"TorchScript model not found: {self.path}")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in torch 2.x
                    model = torch.jit.load(str(self.path), map_location="cpu")
            except RuntimeError as e:
                raise ValueError(f"{self.path}: not a TorchScript file ({str(e).splitlines()[0]})") from None
        else:
            self.path = Path(f"<{type(model).__name__}>")
        self.module = model.eval()
        if inputs is None or outputs is None:
            inferred = _mlp_specs(self.module, input_names, output_names)
            inputs, outputs = inputs or inferred[0], outputs or inferred[1]
        self.inputs, self.outputs = tuple(inputs), tuple(outputs)
        if threads is not None:
            torch.set_num_threads(threads)
        self._torch = torch

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        try:
            with torch.inference_mode():
                out = self.module(*(torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs))
        except Exception:
            check_feeds(self.path, self.inputs, feeds)  # a clear message when the feeds are wrong
            raise
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {s.name: o.detach().numpy() for s, o in zip(self.outputs, out)}

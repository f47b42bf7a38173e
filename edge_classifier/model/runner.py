"""The runner seam: invoke a prepared input tensor, get the raw output; LiteRT (or tflite-runtime) is the real one."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from edge_classifier.errors import ModelError, first_line
from edge_classifier.model.quant import SUPPORTED_DTYPES, QuantParams, dequantize

logger = logging.getLogger(__name__)


def interpreter_class() -> tuple[Any, str]:
    """The Interpreter class to use and the package it came from."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        raise ModelError(
            "no TFLite interpreter: install ai-edge-litert (or tflite-runtime where LiteRT has no wheel)"
        ) from None


# LiteRT's C++ logger prints this to file descriptor 2 when a process creates its first XNNPACK delegate;
# TF_CPP_MIN_LOG_LEVEL does not reach that logger and LiteRT has no option for it (ai-edge-litert 2.3).
LITERT_BANNER = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"


@contextlib.contextmanager
def _native_stderr_without(line: bytes) -> Iterator[None]:
    """While the block runs, file descriptor 2 goes to a temporary file; afterwards what was written there,
    less `line`, is written to the real stderr. Scoped to one call, so no thread or pipe outlives it."""
    try:
        captured = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, once fd 2 is back
    except OSError:  # nowhere to put it: the banner is harmless, let it through
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(captured.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        captured.seek(0)
        kept = captured.read().replace(line, b"", 1)
        captured.close()
        if kept:
            sys.stderr.buffer.write(kept)
            sys.stderr.flush()


def load_interpreter(model_path: Path, num_threads: int = 1, xnnpack: bool = True) -> Any:
    """An allocated interpreter for a .tflite file, or ModelError naming what is wrong with it."""
    cls, package = interpreter_class()
    if not model_path.is_file():
        raise ModelError(f"model file {model_path} does not exist")
    kwargs: dict[str, Any] = {"model_path": str(model_path), "num_threads": num_threads}
    if not xnnpack:
        from ai_edge_litert.interpreter import OpResolverType

        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    # The banner stays in the log only when debugging (the CLI's -v sets the level).
    quiet = (
        _native_stderr_without(LITERT_BANNER) if not logger.isEnabledFor(logging.DEBUG) else contextlib.nullcontext()
    )
    try:
        with quiet:
            interpreter = cls(**kwargs)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"model file {model_path} is not a loadable TFLite model: {first_line(exc)}") from None
    logger.debug("loaded %s with %s (%d threads)", model_path, package, num_threads)
    return interpreter


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: where it lives and how it stores numbers."""

    index: int
    shape: tuple[int, ...]
    quant: QuantParams

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> TensorSpec:
        quant = QuantParams.from_details(details)
        if quant.dtype not in SUPPORTED_DTYPES:
            raise ModelError(f"tensor {details['name']!r} has dtype {quant.dtype}; supported: float32, uint8, int8")
        if quant.dtype.kind in "iu" and not quant.is_quantized:
            raise ModelError(f"tensor {details['name']!r} is {quant.dtype} without quantization parameters")
        return cls(int(details["index"]), tuple(int(d) for d in details["shape"]), quant)


SCORES_OUTPUT = "scores"
EMBEDDING_OUTPUT = "embedding"


@dataclass(frozen=True)
class OutputRef:
    """One output as a manifest names it: its tensor's name in the .tflite and/or its position among the outputs.

    The tensor name is what identifies it; a position alone is for hand-written manifests. With both, they must
    agree. `shape`, when given, must be the tensor's.
    """

    role: str
    tensor: str | None = None
    position: int | None = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class OutputNames:
    """Which output holds the class scores and which, if any, the embedding (from the manifest's `outputs`)."""

    scores: OutputRef
    embedding: OutputRef | None = None


@dataclass(frozen=True)
class ModelSpecs:
    """The input, the scores output and the optional embedding output of a classifier."""

    input: TensorSpec
    scores: TensorSpec
    embedding: TensorSpec | None = None


def _output_details(outputs: list[dict[str, Any]], ref: OutputRef) -> dict[str, Any]:
    """The output tensor REF names: by tensor name, else by position; ModelError when it is not there."""
    names = [str(d["name"]) for d in outputs]
    if ref.tensor is not None:
        if names.count(ref.tensor) != 1:
            raise ModelError(
                f"the manifest's output {ref.role!r} is tensor {ref.tensor!r}, which is not one of the model's "
                f"outputs ({', '.join(map(repr, names))})"
            )
        position = names.index(ref.tensor)
        if ref.position is not None and ref.position != position:
            raise ModelError(
                f"the manifest's output {ref.role!r} is tensor {ref.tensor!r} at index {ref.position}, "
                f"but the model has it at index {position}"
            )
    elif ref.position is not None and 0 <= ref.position < len(outputs):
        position = ref.position
    else:
        raise ModelError(
            f"the manifest's output {ref.role!r} is at index {ref.position}, but the model has {len(outputs)} outputs"
        )
    details = outputs[position]
    shape = tuple(int(d) for d in details["shape"])
    if ref.shape is not None and ref.shape != shape:
        raise ModelError(
            f"the manifest's output {ref.role!r} has shape {list(ref.shape)}, the model's tensor {names[position]!r} "
            f"has {list(shape)}"
        )
    return details


def model_specs(interpreter: Any, outputs: OutputNames | None = None) -> ModelSpecs:
    """The single input, the scores output and the embedding output (when OUTPUTS names one).

    Without OUTPUTS the model must have exactly one output, the scores: which of several outputs holds
    what is never guessed from their order.
    """
    inputs, details = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1:
        raise ModelError(f"expected 1 input tensor, the model has {len(inputs)}")
    if outputs is None:
        if len(details) != 1:
            names = ", ".join(repr(str(d["name"])) for d in details)
            raise ModelError(
                f"the model has {len(details)} output tensors ({names}) and nothing says which one holds the "
                "class scores: load it through a manifest (model.manifest) whose `outputs` names them; a model "
                "file given alone (model.path) must have exactly one output"
            )
        return ModelSpecs(TensorSpec.from_details(inputs[0]), TensorSpec.from_details(details[0]))
    scores = _output_details(details, outputs.scores)
    embedding = None if outputs.embedding is None else _output_details(details, outputs.embedding)
    if embedding is not None and embedding["index"] == scores["index"]:
        raise ModelError(f"the manifest names tensor {scores['name']!r} as both the scores and the embedding")
    return ModelSpecs(
        TensorSpec.from_details(inputs[0]),
        TensorSpec.from_details(scores),
        None if embedding is None else TensorSpec.from_details(embedding),
    )


def io_specs(interpreter: Any, outputs: OutputNames | None = None) -> tuple[TensorSpec, TensorSpec]:
    """The single input and the scores output of an image classifier (see model_specs)."""
    specs = model_specs(interpreter, outputs)
    return specs.input, specs.scores


def run_raw(
    interpreter: Any, input_spec: TensorSpec, output_spec: TensorSpec, input_tensor: npt.NDArray[Any]
) -> npt.NDArray[Any]:
    """Invoke once and return a copy of the raw (still quantized) output vector."""
    interpreter.set_tensor(input_spec.index, input_tensor)
    interpreter.invoke()
    return np.array(interpreter.get_tensor(output_spec.index)).reshape(-1)


class Runner(Protocol):
    """What a classifier needs from an interpreter: its tensors' specs and one invocation."""

    @property
    def input_spec(self) -> TensorSpec: ...

    @property
    def output_spec(self) -> TensorSpec: ...

    def invoke(self, input_tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The raw (still quantized) output vector for one prepared input tensor, as a copy."""

    def close(self) -> None: ...


@runtime_checkable
class EmbeddingRunner(Runner, Protocol):
    """A runner whose model may also give an embedding (a second output named by the manifest)."""

    @property
    def embedding_spec(self) -> TensorSpec | None: ...

    def embedding_raw(self) -> npt.NDArray[Any]:
        """The raw embedding of the last invoke(), as a copy; only when embedding_spec is not None."""


class LiteRTRunner:
    """A loaded .tflite file; not thread-safe, so only the thread that owns the model calls invoke().

    A model with more than one output needs OUTPUTS (the manifest's `outputs`) to say which is which.
    """

    def __init__(self, model_path: Path, num_threads: int = 1, outputs: OutputNames | None = None):
        self.model_path = model_path
        self._interpreter: Any = load_interpreter(model_path, num_threads=num_threads)
        try:
            specs = model_specs(self._interpreter, outputs)
        except ModelError as exc:
            self._interpreter = None
            raise ModelError(f"model file {model_path}: {exc}") from None
        self._input_spec, self._output_spec, self._embedding_spec = specs.input, specs.scores, specs.embedding

    @property
    def input_spec(self) -> TensorSpec:
        return self._input_spec

    @property
    def output_spec(self) -> TensorSpec:
        return self._output_spec

    @property
    def embedding_spec(self) -> TensorSpec | None:
        return self._embedding_spec

    def invoke(self, input_tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return run_raw(self._interpreter, self._input_spec, self._output_spec, input_tensor)

    def embedding_raw(self) -> npt.NDArray[Any]:
        assert self._embedding_spec is not None, "the model has no embedding output"
        return np.array(self._interpreter.get_tensor(self._embedding_spec.index)).reshape(-1)

    def close(self) -> None:
        self._interpreter = None


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = np.exp(logits - np.max(logits))
    probabilities: npt.NDArray[np.float32] = (shifted / np.sum(shifted)).astype(np.float32)
    return probabilities


def scores_from_raw(raw: npt.NDArray[Any], output_spec: TensorSpec, logits: bool) -> npt.NDArray[np.float32]:
    """Dequantized class scores; softmax applied only when the model outputs logits."""
    real = dequantize(raw, output_spec.quant)
    return softmax(real) if logits else real


def unit_embedding(raw: npt.NDArray[Any], spec: TensorSpec) -> npt.NDArray[np.float32]:
    """The dequantized embedding scaled to unit L2 norm (all zeros stays all zeros): cosine is then a dot product."""
    real = dequantize(raw, spec.quant)
    norm = float(np.linalg.norm(real))
    unit: npt.NDArray[np.float32] = (real / norm).astype(np.float32) if norm > 0.0 else real
    return unit


def op_counts(interpreter: Any) -> dict[str, int]:
    """How many times each operator appears in the graph (for the full-int8 and BN-folding checks)."""
    return dict(Counter(op["op_name"] for op in interpreter._get_ops_details()))


def tensor_dtypes(interpreter: Any) -> set[str]:
    """The dtypes of every tensor in the graph (weights, activations, inputs and outputs)."""
    return {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}

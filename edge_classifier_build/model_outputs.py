"""Which output of a built .tflite is which, read from its signature by name (never from the outputs' order).

With --embedding-output the converted model has two outputs, the class scores and the pooled feature
vector. The converter orders a model's outputs by their signature keys (so `embedding` comes before
`scores`); the signature maps each key to its tensor, and the manifest records that tensor's name and
position. No TensorFlow here: the build's evaluation steps use it on the written file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge_classifier.errors import ModelError
from edge_classifier.model.runner import (
    EMBEDDING_OUTPUT,
    SCORES_OUTPUT,
    OutputNames,
    OutputRef,
    TensorSpec,
    load_interpreter,
    model_specs,
)

logger = logging.getLogger(__name__)

# The signature keys the build gives the two outputs: the Keras output layers' names (convert.with_embedding_output).
OUTPUT_KEYS = (SCORES_OUTPUT, EMBEDDING_OUTPUT)


def signature_outputs(interpreter: Any) -> OutputNames | None:
    """None for a one-output model; else the scores and embedding outputs by the signature's keys.

    ModelError when a model with several outputs lacks a signature keyed `scores` and `embedding`.
    """
    details = interpreter.get_output_details()
    if len(details) == 1:
        return None
    signatures = list(interpreter.get_signature_list())
    if len(signatures) != 1:
        raise ModelError(f"a model with {len(details)} outputs needs one signature, it has {signatures}")
    by_key = interpreter.get_signature_runner(signatures[0]).get_output_details()
    if sorted(by_key) != sorted(OUTPUT_KEYS):
        raise ModelError(f"the model's outputs are keyed {sorted(by_key)}, expected {sorted(OUTPUT_KEYS)}")
    names = [str(d["name"]) for d in details]

    def ref(key: str) -> OutputRef:
        tensor = str(by_key[key]["name"])
        return OutputRef(key, tensor, names.index(tensor), tuple(int(d) for d in by_key[key]["shape"]))

    return OutputNames(ref(SCORES_OUTPUT), ref(EMBEDDING_OUTPUT))


def outputs_of(tflite_path: Path) -> OutputNames | None:
    """signature_outputs of a .tflite file."""
    return signature_outputs(load_interpreter(tflite_path, xnnpack=False))


def tensor_entry(spec: TensorSpec) -> dict[str, Any]:
    """A tensor as the manifest describes it."""
    return {
        "shape": list(spec.shape),
        "dtype": spec.quant.dtype.name,
        "scale": spec.quant.scale,
        "zero_point": spec.quant.zero_point,
    }


def manifest_io(tflite_path: Path) -> dict[str, Any]:
    """The manifest's `input` and `output` (the scores), and for a model with an embedding `outputs` and `embedding`."""
    interpreter = load_interpreter(tflite_path)
    outputs = signature_outputs(interpreter)
    specs = model_specs(interpreter, outputs)
    io: dict[str, Any] = {"input": tensor_entry(specs.input), "output": tensor_entry(specs.scores)}
    if outputs is None or outputs.embedding is None or specs.embedding is None:
        return io
    entries = [
        {"name": ref.role, "index": ref.position, "tensor": ref.tensor, **tensor_entry(spec)}
        for ref, spec in ((outputs.scores, specs.scores), (outputs.embedding, specs.embedding))
    ]
    io["outputs"] = sorted(entries, key=lambda entry: int(entry["index"]))
    io["embedding"] = {"dims": specs.embedding.shape[-1], "normalized_by": "runtime"}
    return io

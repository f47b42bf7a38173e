"""Embeddings: the default model's second output (the pooled feature vector), named by its manifest, L2-normalised by
the runtime; one-output models unchanged; a two-output model without names refused; the manifest's new fields.

The stand-in two-output model is a tiny network converted here by the build's own functions, as the default
model was (`edge-classifier-build --embedding-output`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from photos import committed_photos, needs_tensorflow

from edge_classifier.errors import ModelError
from edge_classifier.model.classifier import Classifier, read_image_bgr, run_selftest
from edge_classifier.model.manifest import load_manifest
from edge_classifier.model.preprocess import Preprocessing, normalize, to_model_pixels
from edge_classifier.model.runner import OutputNames, OutputRef
from fakes import fake_classifier, solid_frame
from helpers import DEFAULT_MANIFEST, FASHION_MANIFEST, ROOT, SCHEMAS

SCHEMA = json.loads((SCHEMAS / "manifest.schema.json").read_text())
SPEC = Preprocessing(color_order="RGB", crop="center", interpolation="area")
STAND_IN_LABELS = tuple(f"class-{i}" for i in range(10))
STAND_IN_SIZE = 32
STAND_IN_DIMS = 24


@pytest.fixture(scope="module")
def default_classifier():
    with Classifier.from_manifest(DEFAULT_MANIFEST) as classifier:
        yield classifier


@pytest.fixture(scope="module")
def photo_embeddings(default_classifier):
    """The default model's embedding of every committed photo, and the photos' classes."""
    photos, classes = committed_photos()
    vectors = [default_classifier.classify(read_image_bgr(photo)).embedding for photo in photos]
    return np.stack(vectors), classes


# --- the committed default model ---------------------------------------------------------------------------------


def test_default_model_gives_a_1280_dim_unit_norm_embedding(default_classifier):
    """The manifest names the embedding output; the runtime dequantizes it and scales it to unit length."""
    document = json.loads(DEFAULT_MANIFEST.read_text())
    frame = read_image_bgr(ROOT / "models" / document["selftest"][0]["image"])
    result = default_classifier.classify(frame)
    embedding = result.embedding
    assert embedding is not None
    assert ((1280,), np.dtype(np.float32), {"dims": 1280, "normalized_by": "runtime"}) == (
        embedding.shape, embedding.dtype, document["embedding"])  # fmt: skip
    assert float(np.linalg.norm(embedding)) == pytest.approx(1.0, abs=1e-5)
    assert (result.embedding_raw.dtype, result.embedding_raw.shape) == (np.dtype(np.int8), (1280,))


def test_embedding_is_computed_once_and_only_when_read(default_classifier):
    """The main loop pays for a copy of the raw vector, not for dequantizing: that happens on first read, once."""
    result = default_classifier.classify(solid_frame(128, 96, 96))
    assert "embedding" not in vars(result)
    first = result.embedding
    assert first is result.embedding and "embedding" in vars(result)


def test_scores_are_what_the_manifest_selftest_recorded(default_classifier):
    """The scores output is read by its tensor name: the self-test images give the raw scores the build recorded."""
    manifest = load_manifest(DEFAULT_MANIFEST)
    document = manifest.document
    assert len(manifest.selftest) == run_selftest(default_classifier, manifest.selftest)
    for case, recorded in zip(manifest.selftest, document["selftest"], strict=True):
        assert recorded["output_raw"] == default_classifier.classify(read_image_bgr(case.image)).raw.tolist()


def test_same_class_photos_are_closer_than_other_class_photos(photo_embeddings):
    """On the committed real photos, two photos of one class have a higher cosine similarity, on average, than two
    photos of different classes; and so for every class on its own.

    Measured when the model was built (341 photos): same class 0.663, different classes 0.182 (per class, within
    0.47-0.75 against 0.08-0.24 to the other classes); leave-one-out 1-NN accuracy 88.6%.
    """
    vectors, classes = photo_embeddings
    similarity = vectors @ vectors.T
    same = (classes[:, None] == classes[None, :]) & ~np.eye(len(classes), dtype=bool)
    different = classes[:, None] != classes[None, :]
    same_mean, different_mean = float(similarity[same].mean()), float(similarity[different].mean())
    assert same_mean > different_mean, (same_mean, different_mean)
    closer = {}
    for index in np.unique(classes):
        rows = classes == index
        within = similarity[np.ix_(rows, rows)][~np.eye(int(rows.sum()), dtype=bool)].mean()
        closer[int(index)] = bool(within > similarity[np.ix_(rows, ~rows)].mean())
    assert all(closer.values()), closer
    assert (round(same_mean, 3), round(different_mean, 3)) == pytest.approx((0.663, 0.182), abs=0.005)


# --- one-output models -------------------------------------------------------------------------------------------


def test_fashion_model_with_one_output_still_classifies_without_embedding():
    """The Fashion-MNIST model has one output and no `outputs` list: it classifies as before, embedding None."""
    with Classifier.from_manifest(FASHION_MANIFEST) as classifier:
        manifest = load_manifest(FASHION_MANIFEST)
        assert (None, None) == (manifest.outputs, classifier.embedding_spec)
        assert len(manifest.selftest) == run_selftest(classifier, manifest.selftest)
        result = classifier.classify(read_image_bgr(manifest.selftest[0].image))
        assert (None, None) == (result.embedding_raw, result.embedding)


def test_a_runner_without_embeddings_gives_none():
    """A runner that knows nothing of embeddings (the tests' fake) still works: embedding None."""
    result = fake_classifier().classify(solid_frame(120))
    assert (2, None) == (int(np.argmax(result.scores)), result.embedding)


# --- a stand-in two-output model built here ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """A tiny seeded network with a global-average-pooling layer, converted to full int8 twice: with the
    embedding output (as --embedding-output does) and without it. Returns the paths, the Keras model and its inputs.
    """
    import tf_keras as keras

    from edge_classifier_build.convert import convert_int8, scores_output_first, with_embedding_output

    keras.utils.set_random_seed(5)
    inputs = keras.Input((STAND_IN_SIZE, STAND_IN_SIZE, 3), name="image")
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(STAND_IN_DIMS, 3, activation="relu")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(len(STAND_IN_LABELS), name="logits")(keras.layers.Dropout(0.2)(pooled))
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="probabilities")(logits))
    photos, _ = committed_photos()
    frames = [read_image_bgr(photo) for photo in photos[::7]]
    pixels = np.stack([to_model_pixels(frame, SPEC, (STAND_IN_SIZE, STAND_IN_SIZE)) for frame in frames])
    folder = tmp_path_factory.mktemp("stand-in")
    two, one = folder / "two.tflite", folder / "one.tflite"
    two.write_bytes(scores_output_first(convert_int8(with_embedding_output(model), pixels, SPEC)))
    one.write_bytes(convert_int8(model, pixels, SPEC))
    features = keras.Model(model.input, pooled).predict(normalize(pixels, SPEC), verbose=0)
    return {"two": two, "one": one, "frames": frames, "features": features}


def stand_in_manifest(tflite: Path, edit: Any = None) -> Path:
    """A manifest for the stand-in, its `input`/`output`/`outputs`/`embedding` written by the build's manifest_io."""
    from edge_classifier.model.manifest import sha256_file
    from edge_classifier_build.model_outputs import manifest_io

    io = manifest_io(tflite)
    document = {
        "schema": "edge-classifier/manifest/v1", "name": "stand-in", "version": "0", "model_file": tflite.name,
        "sha256": sha256_file(tflite), "size_bytes": tflite.stat().st_size, "labels": list(STAND_IN_LABELS),
        "input": io["input"], "output": {**io["output"], "kind": "probabilities"},
        **{key: io[key] for key in ("outputs", "embedding") if key in io},
        "preprocessing": SPEC.as_dict(),
    }  # fmt: skip
    if edit is not None:
        edit(document)
    folder = tflite.parent  # model_file is relative to the manifest's folder
    path = folder / f"{tflite.stem}-{len(list(folder.glob('*.json')))}.json"
    path.write_text(json.dumps(document))
    return path


@needs_tensorflow
@pytest.mark.build
def test_stand_in_outputs_are_named_by_tensor_not_by_order(stand_in):
    """The build puts the scores first (the converter orders outputs by name, embedding first); the manifest
    records which tensor is which."""
    from edge_classifier_build.model_outputs import manifest_io, outputs_of

    outputs = outputs_of(stand_in["two"])
    assert outputs is not None and outputs.embedding is not None
    assert ((1, (1, STAND_IN_DIMS)), (0, (1, 10))) == (
        (outputs.embedding.position, outputs.embedding.shape), (outputs.scores.position, outputs.scores.shape))  # fmt: skip
    io = manifest_io(stand_in["two"])
    assert (["scores", "embedding"], {"dims": STAND_IN_DIMS, "normalized_by": "runtime"}) == (
        [entry["name"] for entry in io["outputs"]], io["embedding"])  # fmt: skip
    assert io["output"] == {
        key: value for key, value in io["outputs"][0].items() if key not in ("name", "index", "tensor")
    }
    assert None is outputs_of(stand_in["one"])


@needs_tensorflow
@pytest.mark.build
def test_stand_in_is_read_by_name_through_its_manifest(stand_in, tmp_path):
    """Through its manifest the two-output model gives the one-output model's scores, bit for bit, and an embedding
    that points where the float network's pooled features point."""
    manifest = stand_in_manifest(stand_in["two"])
    jsonschema.validate(json.loads(manifest.read_text()), SCHEMA)
    one = Classifier.from_file(stand_in["one"], STAND_IN_LABELS, SPEC)
    with Classifier.from_manifest(manifest) as two, one:
        for frame, features in zip(stand_in["frames"], stand_in["features"], strict=True):
            alone, both = one.classify(frame), two.classify(frame)
            assert (None, alone.raw.tolist()) == (alone.embedding, both.raw.tolist())
            assert both.embedding is not None and float(np.linalg.norm(both.embedding)) == pytest.approx(1, abs=1e-5)
            cosine = float(both.embedding @ features) / float(np.linalg.norm(features))
            assert cosine > 0.99, cosine


@needs_tensorflow
@pytest.mark.build
def test_stand_in_by_index_only_and_with_swapped_names(stand_in, tmp_path):
    """A hand-written manifest may give indexes only; naming the embedding as the scores is refused."""

    def indexes_only(document: dict[str, Any]) -> None:
        for entry in document["outputs"]:
            del entry["tensor"]

    with Classifier.from_manifest(stand_in_manifest(stand_in["two"], indexes_only)) as classifier:
        assert classifier.embedding_spec is not None and classifier.embedding_spec.shape == (1, STAND_IN_DIMS)

    def swapped(document: dict[str, Any]) -> None:
        first, second = document["outputs"]
        first["name"], second["name"] = second["name"], first["name"]
        del document["embedding"]

    with pytest.raises(ModelError, match="the model outputs 24 classes but there are 10 labels"):
        Classifier.from_manifest(stand_in_manifest(stand_in["two"], swapped))


@needs_tensorflow
@pytest.mark.build
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["outputs"][0].update(tensor="nope"), "output 'scores' is tensor 'nope', which is not one of"),
        (lambda d: d["outputs"][0].update(index=1), "output 'scores' is tensor '.*' at index 1, but the model has it at"),
        (lambda d: d["outputs"][1].update(index=7, tensor=None) or d["outputs"][1].pop("tensor"),
         "output 'embedding' is at index 7, but the model has 2 outputs"),
        (lambda d: d["outputs"][0].update(shape=[1, 11]), r"output 'scores' has shape \[1, 11\], the model's tensor"),
    ],
    ids=["unknown-tensor", "index-disagrees", "index-out-of-range", "shape-disagrees"],
)  # fmt: skip
def test_stand_in_manifest_that_does_not_match_the_model_is_refused(stand_in, tmp_path, edit, message):
    """A manifest whose outputs are not the model's is a ModelError naming the output."""
    with pytest.raises(ModelError, match=message):
        Classifier.from_manifest(stand_in_manifest(stand_in["two"], edit))


@needs_tensorflow
@pytest.mark.build
def test_two_outputs_without_a_manifest_are_refused(stand_in, tmp_path):
    """Given alone (model.path), a two-output model is refused: nothing says which output holds the scores."""
    from edge_classifier.config.settings import ModelConfig
    from edge_classifier.model.loading import open_classifier

    with pytest.raises(ModelError, match="2 output tensors .* nothing says which one holds the class scores"):
        Classifier.from_file(stand_in["two"], STAND_IN_LABELS, SPEC)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{label}\n" for label in STAND_IN_LABELS))
    config = ModelConfig(path=stand_in["two"], labels=labels, fallback_manifest=None)
    with pytest.raises(ModelError) as refused:
        open_classifier(config)
    message = str(refused.value)
    assert (True, True, True) == (
        message.startswith(f"model.path: model file {stand_in['two']}:"), "(model.manifest)" in message,
        "\n" not in message), message  # fmt: skip
    # The same file with a manifest whose `outputs` names them loads.
    with Classifier.from_manifest(stand_in_manifest(stand_in["two"])) as classifier:
        assert classifier.embedding_spec is not None


# --- the manifest's new fields -----------------------------------------------------------------------------------


def default_document() -> dict[str, Any]:
    return copy.deepcopy(json.loads(DEFAULT_MANIFEST.read_text()))


def test_default_manifest_outputs_validate_and_name_both_outputs():
    """The committed manifest has `outputs` (scores and embedding, by tensor and index) and `embedding`, and keeps
    `output` for the scores as daemons before `outputs` read it."""
    document = default_document()
    jsonschema.validate(document, SCHEMA)
    outputs = load_manifest(DEFAULT_MANIFEST).outputs
    assert isinstance(outputs, OutputNames) and isinstance(outputs.embedding, OutputRef)
    entries = {entry["name"]: entry for entry in document["outputs"]}
    assert ({"scores", "embedding"}, [1, 1280], document["output"]["shape"]) == (
        set(entries), entries["embedding"]["shape"], entries["scores"]["shape"])  # fmt: skip
    assert (outputs.scores.tensor, outputs.scores.position) == (entries["scores"]["tensor"], entries["scores"]["index"])


@pytest.mark.parametrize(
    ("edit", "schema_error", "message"),
    [
        (lambda d: d.pop("outputs"), "'outputs' is a dependency of 'embedding'", "an `embedding` section needs"),
        (lambda d: d["outputs"].pop(0), "does not contain items matching", "outputs has no 'scores' entry"),
        (lambda d: d["outputs"][1].update(name="scores"), "Too many items match", "outputs names an output twice"),
        (lambda d: [e.pop(k) for e in d["outputs"] for k in ("tensor", "index")], "is not valid under any",
         "needs a tensor name or an index"),
        (lambda d: d["outputs"][0].update(index=-1), "less than the minimum", "index must be an integer >= 0"),
        (lambda d: d["embedding"].update(dims=512), None, "embedding.dims is 512, the embedding output's shape"),
        (lambda d: d["embedding"].update(normalized_by="model"), "is not one of", None),
    ],
    ids=["embedding-without-outputs", "no-scores", "scores-twice", "neither-tensor-nor-index", "negative-index",
         "dims-mismatch", "normalized-by-model"],
)  # fmt: skip
def test_bad_outputs_fields_are_refused_by_schema_and_loader(tmp_path, edit, schema_error, message):
    """Each broken `outputs`/`embedding` field fails the schema and the daemon's loader with a message naming it."""
    document = default_document()
    edit(document)
    if schema_error is None:
        jsonschema.validate(document, SCHEMA)
    else:
        with pytest.raises(jsonschema.ValidationError, match=schema_error):
            jsonschema.validate(document, SCHEMA)
    if message is not None:
        path = tmp_path / DEFAULT_MANIFEST.name
        path.write_text(json.dumps(document))
        with pytest.raises(ModelError, match=message):
            load_manifest(path)


def test_unknown_output_names_are_ignored(tmp_path):
    """A later format may name more outputs: the loader reads scores and embedding and ignores the rest."""
    document = default_document()
    document["outputs"].append({"name": "attention", "index": 2})
    jsonschema.validate(document, SCHEMA)
    path = tmp_path / DEFAULT_MANIFEST.name
    path.write_text(json.dumps(document))
    outputs = load_manifest(path).outputs
    assert outputs is not None and (outputs.scores.role, getattr(outputs.embedding, "role", None)) == (
        "scores", "embedding")  # fmt: skip

"""decode_predictions, the label sets it reads, and the "classify a photo" example of the docs."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_preact as kp
from export.labels import resolve_labels
from keras_preact import labels
from keras_preact.datasets import LABEL_NAMES, load_sample

ROOT = Path(__file__).resolve().parents[2]


def installed_file(package: str, *parts: str) -> Path:
    """A file of an installed package, found without importing it (torchvision fails to import)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    return Path(spec.submodule_search_locations[0], *parts)


def test_imagenet_names_are_torchvisions_and_ids_are_the_imagenet_class_order():
    source = installed_file("torchvision", "models", "_meta.py").read_text(encoding="utf-8")
    (categories,) = [
        ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", "") == "_IMAGENET_CATEGORIES"
    ]
    assert kp.label_names("imagenet") == tuple(categories)
    synsets = installed_file("timm", "data", "_info", "imagenet_synsets.txt").read_text().split()
    ids = labels.imagenet_wordnet_ids()
    assert ids == tuple(synsets)
    assert list(ids) == sorted(set(ids)) and len(ids) == 1000
    # Pairs as keras.applications' imagenet_class_index.json has them.
    for index, wnid in (
        (0, "n01440764"),
        (281, "n02123045"),
        (517, "n03126707"),
        (999, "n15075141"),
    ):
        assert ids[index] == wnid
    names = kp.label_names("imagenet")
    assert (names[134], names[517]) == ("crane bird", "crane") and len(set(names)) == 1000


def test_one_home_for_the_cifar_names_and_export_unchanged():
    assert kp.label_names("cifar10") == load_sample().label_names
    assert len(kp.label_names("cifar100")) == 100
    assert LABEL_NAMES == {"cifar10": labels.CIFAR10_LABELS, "cifar100": labels.CIFAR100_LABELS}
    assert resolve_labels(None, 10) == labels.CIFAR10_LABELS
    assert resolve_labels("cifar100", 100) == labels.CIFAR100_LABELS
    # export keeps naming the classes of a 1,000-way model by number.
    assert resolve_labels(None, 1000) == tuple(map(str, range(1000)))


@pytest.mark.parametrize(
    ("classes", "label_set"), [(10, "cifar10"), (100, "cifar100"), (1000, "imagenet")]
)
def test_decode_predictions_ranks_every_image(classes, label_set):
    rng = np.random.default_rng(classes)
    probs = keras.ops.softmax(rng.normal(size=(3, classes)).astype("float32"))  # a backend tensor
    decoded = kp.decode_predictions(probs, top=4)
    array = np.asarray(probs)
    names = kp.label_names(label_set)
    assert len(decoded) == 3
    for row, predictions in zip(array, decoded, strict=True):
        best = np.argsort(-row)[:4]
        assert [p.name for p in predictions] == [names[c] for c in best]
        assert [p.score for p in predictions] == pytest.approx(row[best].tolist())
        ids = [p.id for p in predictions]
        if label_set == "imagenet":
            assert ids == [labels.imagenet_wordnet_ids()[c] for c in best]
        else:
            assert ids == [str(c) for c in best]
        wnid, name, score = predictions[0]  # keras.applications' layout
        assert (wnid, name, score) == tuple(predictions[0]) and isinstance(score, float)


def test_decode_predictions_options():
    probs = np.array([[0.1, 0.4, 0.4, 0.1]])
    # Equal scores: the lower class first; a top beyond the classes returns them all.
    decoded = kp.decode_predictions(probs, top=9, labels=["a", "b", "c", "d"])
    assert [(p.id, p.name) for p in decoded[0]] == [("1", "b"), ("2", "c"), ("0", "a"), ("3", "d")]
    logits = np.zeros((1, 10))
    logits[0, 3] = -1.0  # logits are ranked too: the cat comes last
    assert kp.decode_predictions(logits, top=10, labels="cifar10")[0][-1].name == "cat"
    half = keras.ops.cast(np.eye(100)[[42]], "bfloat16")  # a mixed-precision model's logits
    assert kp.decode_predictions(half, top=1)[0][0].name == kp.label_names("cifar100")[42]
    assert kp.decode_predictions([[0.0, 1.0] + [0.0] * 8], top=1) == [
        [labels.Prediction("1", "automobile", 1.0)]
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(probs=np.ones(10)), "got shape (10,)"),
        (dict(probs=np.ones((2, 3, 10))), "got shape (2, 3, 10)"),
        (dict(probs=np.ones((0, 10))), "got shape (0, 10)"),
        (dict(probs=[[1.0, float("nan")] + [0.0] * 8]), "got nan at [0, 1]"),
        (dict(probs=np.full((1, 10), np.inf)), "got inf at [0, 0] (10 non-finite values)"),
        (dict(probs=[["cat"] * 10]), "got [['cat', 'cat'"),
        (dict(probs=[[1.0], [1.0, 2.0]]), "got [[1.0], [1.0, 2.0]]"),
        (dict(probs=np.ones((1, 10)), top=0), "top must be an integer >= 1, got 0"),
        (dict(probs=np.ones((1, 10)), top=2.5), "got 2.5"),
        (dict(probs=np.ones((1, 10)), top=True), "got True"),
        (dict(probs=np.ones((1, 10)), labels="coco"), "unknown label set 'coco'"),
        (dict(probs=np.ones((1, 10)), labels="imagenet"), "label set 'imagenet' has 1000 classes but probs has 10"),
        (dict(probs=np.ones((1, 3)), labels=["a", "b"]), "labels has 2 classes but probs has 3"),
        (dict(probs=np.ones((1, 3)), labels=[1, 2, 3]), "got [1, 2, 3]"),
        (dict(probs=np.ones((1, 37))), "no label set has 37 classes"),
    ],
)  # fmt: skip
def test_bad_input_gets_one_line(kwargs, message):
    with pytest.raises(ValueError) as e:
        kp.decode_predictions(**kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def classify_a_photo_snippet(page: str) -> str:
    """The code block after the ``classify-a-photo`` marker of a page."""
    text = (ROOT / page).read_text(encoding="utf-8")
    match = re.search(r"<!-- classify-a-photo[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"{page} lost its classify-a-photo block"
    return match.group(1)


@pytest.mark.slow
@pytest.mark.parametrize("page", ["README.md", "docs/predictions.md"])
def test_classify_a_photo_example_runs(page, tmp_path, capsys):
    """The example of the README and of the predictions page, exactly, with random weights
    instead of the trained ones, on a real photo (a CIFAR-10 test image saved as PNG)."""
    code = classify_a_photo_snippet(page)
    statements = [line for line in code.splitlines() if line and not line.startswith("import ")]
    assert len(statements) == 3, statements  # load the model, load the image, decode
    assert code.count('weights="imagenet"') == 1 and code.count('"photo.jpg"') == 1
    photo = tmp_path / "photo.png"
    keras.utils.save_img(photo, load_sample().x_test[7])
    code = code.replace('weights="imagenet"', "weights=None").replace(
        '"photo.jpg"', repr(str(photo))
    )
    namespace: dict = {}
    exec(compile(code, page, "exec"), namespace)  # the docs' own code
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    model, image = namespace["model"], namespace["image"]
    assert image.shape == (224, 224, 3) and image.max() > 1  # raw pixels of the photo
    probs = model.predict(image[None], verbose=0)
    expected = kp.decode_predictions(probs, top=5)[0]
    assert printed == repr(expected)
    assert [p.name for p in expected] == [
        kp.label_names("imagenet")[c] for c in np.argsort(-probs[0], kind="stable")[:5]
    ]

"""keras-tuner over the pipeline: two trials on tiny data, a resumable tuner directory, bad input."""

from __future__ import annotations

import json

import pytest

from keras_preact.command_line import UserError
from training import tune
from training.experiments import search
from training.run.pipeline import TrainConfig

BASE = TrainConfig(dataset="cifar10-sample", recipe="demo", verbose="quiet", seed=0)
SPACE = search.SearchSpace(
    lr=(0.02, 0.2), weight_decay=(1e-5, 1e-3), batch_sizes=(100, 150), models=("resnet8v1",)
)


def _search(out, **overrides):
    settings = dict(
        tuner="random",
        output=str(out),
        max_trials=2,
        epochs=1,
        max_epochs=2,
        validation_split=0.2,
        seed=1,
    )
    settings.update(overrides)
    return search.search(BASE, SPACE, **settings)


@pytest.mark.slow
def test_two_trials_then_resume(tmp_path, capsys):
    out = tmp_path / "tune"
    best = _search(out)
    assert len(best) == 2
    assert best[0]["val_accuracy"] >= best[1]["val_accuracy"]
    for trial in best:
        values = trial["hyperparameters"]
        assert 0.02 <= values["lr"] <= 0.2 and values["batch_size"] in (100, 150)
        assert values["model"] == "resnet8v1"
        assert trial["command"].startswith("python -m training.cifar --model resnet8v1")
        assert 0 <= trial["val_accuracy"] <= 1
    assert json.loads((out / "best_trials.json").read_text()) == json.loads(json.dumps(best))
    trials = sorted(p.name for p in (out / "search").iterdir() if p.name.startswith("trial_"))
    assert trials == ["trial_0", "trial_1"]
    assert "Results summary" in capsys.readouterr().out

    # Re-running the same search finds its budget spent: no new trial, the same best.
    again = _search(out)
    assert again == best
    assert (
        sorted(p.name for p in (out / "search").iterdir() if p.name.startswith("trial_")) == trials
    )
    with pytest.raises(UserError, match="other settings"):
        _search(out, max_trials=3)


def test_holdout_is_taken_from_the_training_images():
    from training.data.cifar.sources import load_arrays

    arrays = load_arrays("cifar10-sample")
    split = arrays.holdout(0.2)
    assert len(split.x_train) == 800 and len(split.x_test) == 200
    assert (split.x_test == arrays.x_train[800:]).all()
    with pytest.raises(UserError, match="validation-split"):
        arrays.holdout(1.0)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--tuner", "grid"], "unknown tuner 'grid'"),
        (["--models", "resnet21v1"], "6n+2"),
        (["--models", "resnet14v2", "--units", "bottleneck"], "9n+2"),
        (["--lr-range", "0.1"], "LOW,HIGH"),
        (["--lr-range", "0.5,0.1"], "lr range"),
        (["--strategy", "multi_worker"], "one machine"),
        (["--max-trials", "0"], "at least 1"),
    ],
)
def test_bad_search_arguments(capsys, tmp_path, monkeypatch, argv, expected):
    monkeypatch.setenv(
        "TF_CONFIG",
        '{"cluster": {"worker": ["127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}',
    )
    out = tmp_path / "tune"
    with pytest.raises(SystemExit) as e:
        tune.main([*argv, "--dataset", "cifar10-sample", "--output", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not out.exists()

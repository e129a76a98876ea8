"""Bad input to python -m training.cifar: one ``error:`` line naming the problem, exit 2, no traceback,
nothing created or lost, and before any heavy work."""

from __future__ import annotations

import dataclasses
import gzip
import math

import pytest
from training_helpers import SAMPLE_RUN, cli, diverged_states_are_finite, error_line

from keras_preact.command_line import UserError
from training import cifar
from training.run.pipeline import TrainConfig, train


def _fails(capsys, argv, expected):
    with pytest.raises(SystemExit) as e:
        cifar.main(argv)
    assert e.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    for needle in expected:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model", "resnet-20"], ["unknown model 'resnet-20'", "resnet20v1", "resnet164v2"]),
        (["--model", "resnet21v1"], ["unknown model 'resnet21v1'", "6n+2", "got 21"]),
        (["--model", "resnet20v1", "--unit", "bottleneck"], ["uses basic units"]),
        (["--model", "resnet21v2"], ["resnet21v2", "6n+2"]),
        (["--dataset", "mnist"], ["unknown dataset 'mnist'", "cifar10, cifar100, cifar10-sample"]),
        (["--strategy", "tpu"], ["unknown strategy 'tpu'", "mirrored", "multi_worker"]),
        (["--recipe", "quick"], ["unknown recipe 'quick'", "paper, fast, demo"]),
        (["--epochs", "three"], ["--epochs", "invalid int value"]),
        (["--epochs", "0"], ["epochs must be at least 1"]),
        (["--epochs", "2", "--iterations", "100"], ["not allowed with argument"]),
        (["--learning-rate", "0.1"], ["unrecognized arguments: --learning-rate"]),
        (["--lr-decay-at", "0.9,0.5"], ["increasing fractions"]),
        (["--mixed-precision", "int8"], ["unknown mixed precision 'int8'", "bfloat16"]),
        (["--jit-compile", "yes"], ["auto, on, off"]),
        (["--cpu-replicas", "2"], ["--cpu-replicas applies to the mirrored strategy"]),
        (["--schedule", "linear"], ["unknown schedule 'linear'", "step, cosine"]),
        (["--warmup", "sometimes"], ["unknown warm-up mode"]),
        (["--seed", "-1"], ["--seed must be in"]),
        (["--verbose", "loud"], ["unknown verbosity 'loud'"]),
        (["--model-option", "width"], ["expected KEY=VALUE"]),
        (["--lr", "inf"], ["argument --lr", "finite", "'inf'"]),
        (["--momentum", "nan"], ["argument --momentum", "finite", "'nan'"]),
        (["--warmup-epochs=-inf"], ["argument --warmup-epochs", "finite"]),
        (["--lr-decay-at", "0.5,nan"], ["argument --lr-decay-at", "finite"]),
        (["--weight-decay", "1e400"], ["argument --weight-decay", "finite"]),
        (["--model-option", "gate_bias=NaN"], ["--model-option", "finite", "NaN"]),
        (["--model-option", "weight_decay=0.1"], ["weight_decay", "--weight-decay"]),
        (["--model-option", "synchronized_bn=true"], ["synchronized_bn", "--sync-bn"]),
        (["--model-option", "shortcut=bogus"], ["model resnet20v1", "bogus"]),
        (["--model", "plain20v1", "--model-option", "shortcut=projection"], ["no shortcuts"]),
    ],
)
def test_bad_arguments(capsys, tmp_path, argv, expected):
    out = tmp_path / "run"
    _fails(capsys, [*argv, "--output", str(out)], expected)
    assert not out.exists()


@pytest.mark.parametrize(
    "override", [{"lr": math.inf}, {"weight_decay": math.inf}, {"warmup_epochs": math.nan}]
)
def test_non_finite_settings_write_nothing(tmp_path, override):
    """Through the API too: refused before the run directory exists, and a finished run given
    --overwrite stays exactly as it was."""
    config = TrainConfig(
        model="resnet8v1",
        dataset="cifar10-sample",
        recipe="demo",
        recipe_overrides=override,
        output=str(tmp_path / "new"),
    )
    with pytest.raises(UserError, match="must be finite"):
        train(config)
    assert not (tmp_path / "new").exists()

    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "config.json").write_text("{}")
    (finished / "metrics.json").write_text('{"final_test_error": 0.5}')
    with pytest.raises(UserError, match="must be finite"):
        train(dataclasses.replace(config, output=str(finished), overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finished"]  # no staging sibling
    assert {p.name: p.read_text() for p in finished.iterdir()} == {
        "config.json": "{}",
        "metrics.json": '{"final_test_error": 0.5}',
    }


def test_malformed_tf_config(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:99999999"]}, "task": 0}')
    out = tmp_path / "run"
    _fails(capsys, ["--strategy", "multi_worker", "--output", str(out)], ["TF_CONFIG", "address"])
    monkeypatch.setenv("TF_CONFIG", "{oops")
    _fails(capsys, ["--strategy", "multi_worker", "--output", str(out)], ["not valid JSON"])
    monkeypatch.delenv("TF_CONFIG")
    _fails(capsys, ["--strategy", "multi_worker", "--output", str(out)], ["needs TF_CONFIG"])
    assert not out.exists()


def test_unwritable_output(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    _fails(capsys, [*SAMPLE_RUN, "--output", str(blocker / "run")], ["cannot write to --output"])
    assert blocker.read_text() == "keep me"


def test_missing_and_corrupt_data(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    _fails(
        capsys,
        ["--data-source", f"folder:{missing}", "--output", str(tmp_path / "a")],
        [str(missing)],
    )
    corrupt = tmp_path / "cifar-10-python.tar.gz"
    corrupt.write_bytes(gzip.compress(b"this is not a tar archive"))
    _fails(
        capsys,
        ["--data-source", f"folder:{corrupt}", "--output", str(tmp_path / "b")],
        ["cifar-10-python.tar.gz"],
    )
    _fails(
        capsys,
        ["--data-source", "s3://bucket", "--output", str(tmp_path / "c")],
        ["unknown data source 's3://bucket'"],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]


def test_unknown_model_option_fails_before_training(capsys, tmp_path):
    out = tmp_path / "run"
    _fails(
        capsys,
        [*SAMPLE_RUN, "--model-option", "depth_scale=2", "--output", str(out)],
        ["depth_scale"],
    )
    assert not (out / "metrics.json").exists() and not (out / "best.keras").exists()


@pytest.mark.slow
def test_batch_must_split_over_the_replicas(tmp_path):
    out = tmp_path / "run"
    result = cli(
        "training.cifar",
        *SAMPLE_RUN,
        "--strategy",
        "mirrored",
        "--cpu-replicas",
        "2",
        "--batch-size",
        "33",
        "--output",
        str(out),
    )
    assert "global batch 33 does not split evenly over 2 replicas" in error_line(result)
    assert not out.exists()


def test_divergence_stops_with_a_clear_message(capsys, tmp_path):
    out = tmp_path / "run"
    argv = [
        *SAMPLE_RUN,
        "--epochs",
        "1",
        "--lr",
        "1e6",
        "--backup-every",
        "1",
        "--output",
        str(out),
    ]
    # The loss of a step is computed before its update: the weights it leaves may already be
    # non-finite while that loss is not, so the backup due then refuses them.
    line = _fails(capsys, argv, ["training diverged: the ", "Lower --lr"])
    assert "nan" in line or "inf" in line or "NaN or infinite" in line
    assert not (out / "metrics.json").exists() and not (out / "best.keras").exists()
    diverged_states_are_finite(out)


@pytest.mark.parametrize(
    "bug", [TypeError("bug"), ValueError("bug"), OSError(5, "bug"), KeyError("bug")]
)
def test_a_bug_shows_its_traceback_not_an_error_line(capsys, tmp_path, monkeypatch, bug):
    """Only input errors get the one line: anything else a stage raises is a bug, and it comes out
    of the command as it is (Python prints its traceback), even a ValueError or an OSError."""
    from training.run import pipeline

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(pipeline, "prepare", broken)
    with pytest.raises(type(bug)) as raised:
        cifar.main([*SAMPLE_RUN, "--output", str(tmp_path / "run")])
    assert raised.value is bug
    assert "error:" not in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

"""The run directory: resume the same run, refuse others, and --overwrite that loses nothing early."""

from __future__ import annotations

import json

import pytest

from keras_preact.command_line import UserError
from training.run import run_folder as rundir

CONFIG = {"model": "resnet8v1", "seed": 1, "recipe_overrides": {"epochs": 2}}


def _open(out, config=CONFIG, overwrite=False) -> rundir.RunDir:
    run = rundir.open_run(out, config, overwrite=overwrite)
    run.claim()
    return run


def _finish(run: rundir.RunDir, error: float = 0.25) -> None:
    (run.path / "best.keras").write_text("model")
    rundir.write_json(run.file(rundir.METRICS), {"final_test_error": error})
    run.finish()


def test_new_run_writes_its_config_and_resumes_with_the_same_one(tmp_path):
    out = tmp_path / "deep" / "run"
    run = rundir.open_run(out, CONFIG, overwrite=False)
    assert (run.path, run.resuming, run.staged) == (out, False, False)
    assert not (tmp_path / "deep").exists()  # nothing is written before claim()
    run.claim()
    assert json.loads((out / rundir.CONFIG).read_text()) == CONFIG
    again = _open(out)
    assert again.resuming and again.path == out


def test_random_seed_is_recorded_and_reused(tmp_path):
    wanted = {**CONFIG, "seed": None}
    first = _open(tmp_path / "run", wanted)
    assert isinstance(first.config["seed"], int)
    second = _open(tmp_path / "run", wanted)
    assert second.resuming and second.config["seed"] == first.config["seed"]


def test_unfinished_run_with_other_settings_is_refused(tmp_path):
    _open(tmp_path / "run")
    other = {**CONFIG, "recipe_overrides": {"epochs": 3}}
    with pytest.raises(UserError, match=r"other settings \(recipe_overrides: .*epochs"):
        rundir.open_run(tmp_path / "run", other, overwrite=False)


def test_finished_run_is_never_silently_overwritten(tmp_path):
    out = tmp_path / "run"
    _finish(_open(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(UserError, match=r"finished run \(final test error 25.00 %\).*--overwrite"):
        rundir.open_run(out, CONFIG, overwrite=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_keeps_the_old_run_until_the_new_one_finishes(tmp_path):
    out = tmp_path / "run"
    _finish(_open(out), error=0.25)
    new = {**CONFIG, "seed": 2}
    run = _open(out, new, overwrite=True)
    assert run.staged and run.path != out and not run.resuming
    # Interrupted: the old run is untouched, and the same command resumes the replacement.
    assert json.loads((out / rundir.METRICS).read_text())["final_test_error"] == 0.25
    again = _open(out, new, overwrite=True)
    assert again.staged and again.resuming and again.path == run.path
    _finish(again, error=0.1)
    assert json.loads((out / rundir.METRICS).read_text())["final_test_error"] == 0.1
    assert json.loads((out / rundir.CONFIG).read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_abandoned_replacement_with_other_settings_is_replaced_only_when_claimed(tmp_path):
    out = tmp_path / "run"
    _finish(_open(out))
    abandoned = _open(out, {**CONFIG, "seed": 2}, overwrite=True)
    (abandoned.path / "backup").mkdir()
    newer = rundir.open_run(out, {**CONFIG, "seed": 3}, overwrite=True)
    assert newer.path == abandoned.path and not newer.resuming
    assert (abandoned.path / "backup").exists()  # untouched until the new run claims it
    newer.claim()
    assert not (abandoned.path / "backup").exists()
    assert json.loads((newer.path / rundir.CONFIG).read_text())["seed"] == 3


def test_swap_interrupted_between_its_renames_is_completed(tmp_path):
    out = tmp_path / "run"
    _finish(_open(out), error=0.25)
    staged = _open(out, {**CONFIG, "seed": 2}, overwrite=True)
    rundir.write_json(staged.file(rundir.METRICS), {"final_test_error": 0.1})
    # Killed right after the first rename of the swap: only the old copy and the staging exist.
    out.rename(tmp_path / ".run.old")
    with pytest.raises(UserError, match="finished run"):
        rundir.open_run(out, {**CONFIG, "seed": 3}, overwrite=False)
    assert json.loads((out / rundir.METRICS).read_text())["final_test_error"] == 0.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_foreign_or_unwritable_output_is_refused(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"...")
    for overwrite in (False, True):
        with pytest.raises(UserError, match="holds no training run"):
            rundir.open_run(foreign, CONFIG, overwrite=overwrite)
    assert (foreign / "cat.jpg").read_bytes() == b"..."
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write to --output"):
        rundir.open_run(blocker / "run", CONFIG, overwrite=False)


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    rundir.write_json(tmp_path / "a.json", {"x": 1})
    rundir.write_bytes(tmp_path / "b.bin", b"\0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]

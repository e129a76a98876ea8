"""python -m training.reproduce: the experiments as data (every row the intended network, the
papers' numbers), --list, bad input (one line, nothing written), the table and the figure from
fabricated histories, the degradation check, and real tiny experiments: trained, reused, resumed
after an interruption, and sent out one run per device."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
from training_helpers import cli, error_line

from keras_preact.command_line import UserError
from training import reproduce
from training.experiments import papers as ex
from training.experiments import runs as campaign_lib
from training.experiments import tables
from training.run import callbacks as cb
from training.run import network

# (experiment, run) -> (depth, unit, placement, shortcut, extra spec fields), from the papers:
# v1 Table 6 / Fig. 6, v2 Table 1 (all on ResNet-110 with original units), Tables 2 and 3.
EXPECTED = {
    **{("degradation", f"plain{d}v1"): (d, "basic", "original", "none", {}) for d in (20, 32, 44, 56, 110)},
    **{("degradation", f"resnet{d}v1"): (d, "basic", "original", "identity", {}) for d in (20, 32, 44, 56, 110)},
    **{("depth", f"resnet{d}v1"): (d, "basic", "original", "identity", {}) for d in (20, 32, 44, 56, 110, 1202)},
    ("shortcuts", "original"): (110, "basic", "original", "identity", {}),
    ("shortcuts", "plain"): (110, "basic", "original", "none", {}),
    ("shortcuts", "scaling-0.5"): (110, "basic", "original", "scaling", {"shortcut_scale": 0.5}),
    ("shortcuts", "exclusive-gating-bg0"): (110, "basic", "original", "exclusive_gating", {"gate_bias": 0.0}),
    ("shortcuts", "exclusive-gating-bg-6"): (110, "basic", "original", "exclusive_gating", {"gate_bias": -6.0}),
    ("shortcuts", "exclusive-gating-bg-7"): (110, "basic", "original", "exclusive_gating", {"gate_bias": -7.0}),
    ("shortcuts", "shortcut-gating-bg0"): (110, "basic", "original", "shortcut_gating", {"gate_bias": 0.0}),
    ("shortcuts", "shortcut-gating-bg-6"): (110, "basic", "original", "shortcut_gating", {"gate_bias": -6.0}),
    ("shortcuts", "conv-shortcut"): (110, "basic", "original", "conv", {}),
    ("shortcuts", "dropout-shortcut"): (110, "basic", "original", "dropout", {"shortcut_dropout": 0.5}),
    **{
        ("placements", f"{d}-{p.replace('_', '-')}"): (d, "basic" if d == 110 else "bottleneck", p, "identity", {})
        for d in (110, 164)
        for p in ("original", "bn_after_add", "relu_before_add", "relu_preact", "full_preact")
    },
    **{
        ("preact", f"{d}-{v}{s}"): (d, "basic" if d == 110 else "bottleneck", "original" if v == "v1" else "full_preact", "identity", {})
        for d in (110, 164, 1001)
        for v in ("v1", "v2")
        for s in ("", "-c100")
        if not (d == 110 and s)
    },
}  # fmt: skip

PAPER = {
    "degradation": {"resnet20v1": 8.75, "resnet32v1": 7.51, "resnet44v1": 7.17, "resnet56v1": 6.97, "resnet110v1": 6.43},
    "depth": {"resnet20v1": 8.75, "resnet32v1": 7.51, "resnet44v1": 7.17, "resnet56v1": 6.97, "resnet110v1": 6.43, "resnet1202v1": 7.93},
    "shortcuts": {"original": 6.61, "plain": None, "scaling-0.5": 12.35, "exclusive-gating-bg0": None,
                  "exclusive-gating-bg-6": 8.70, "exclusive-gating-bg-7": 9.81, "shortcut-gating-bg0": 12.86,
                  "shortcut-gating-bg-6": 6.91, "conv-shortcut": 12.22, "dropout-shortcut": None},
    "placements": {"110-original": 6.61, "110-bn-after-add": 8.17, "110-relu-before-add": 7.84,
                   "110-relu-preact": 6.71, "110-full-preact": 6.37, "164-original": 5.93, "164-bn-after-add": 6.50,
                   "164-relu-before-add": 6.14, "164-relu-preact": 5.91, "164-full-preact": 5.46},
    "preact": {"110-v1": 6.61, "110-v2": 6.37, "164-v1": 5.93, "164-v2": 5.46, "1001-v1": 7.61, "1001-v2": 4.92,
               "164-v1-c100": 25.16, "164-v2-c100": 24.33, "1001-v1-c100": 27.82, "1001-v2-c100": 22.71},
}  # fmt: skip


def test_every_row_is_the_intended_network_with_the_papers_number():
    seen = set()
    for experiment in ex.EXPERIMENTS.values():
        assert len(set(experiment.run_names)) == len(experiment.runs)
        for run in experiment.runs:
            depth, unit, placement, shortcut, extra = EXPECTED[(experiment.name, run.name)]
            arch = network.architecture(*network.resolve(run.model, run.options))
            assert (arch.family, arch.depth, arch.spec.unit) == ("cifar", depth, unit), run.name
            assert (arch.spec.placement, arch.spec.shortcut) == (placement, shortcut), run.name
            for field, value in extra.items():
                assert getattr(arch.spec, field) == value, (run.name, field)
            assert run.paper_error == PAPER.get(experiment.name, {}).get(run.name), run.name
            assert run.dataset == ("cifar100" if run.name.endswith("-c100") else "cifar10")
            seen.add((experiment.name, run.name))
        for panel in experiment.panels:
            assert set(panel.runs) <= set(experiment.run_names), panel.title
    assert seen == set(EXPECTED)
    # Within a depth, a placements row differs from the original row only by its placement.
    placements = ex.EXPERIMENTS["placements"]
    for depth in (110, 164):
        rows = [r for r in placements.runs if r.name.startswith(f"{depth}-")]
        assert len({(r.model, r.dataset) for r in rows}) == 1
    # "fail" rows say so, and the row no option expresses is shown, not dropped.
    shortcuts = ex.EXPERIMENTS["shortcuts"]
    assert shortcuts.run("dropout-shortcut").paper_note == ex.FAIL
    assert [u.paper_note for u in shortcuts.unexpressible] == [ex.FAIL]
    assert [u.paper_error for u in ex.EXPERIMENTS["preact"].unexpressible] == [9.90, 8.91]


def test_list_prints_every_run_and_its_cost_in_images_seen(tmp_path, capsys):
    assert reproduce.main(["preact", "--list", "--output", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    # The paper's 64k iterations at batch 128: 164 epochs of 390 batches on 50,000 images.
    assert out.count("8,186,880") == 10
    assert "1001-v2-c100" in out and "cifar100" in out and "not expressible" in out
    assert "to train: 81,868,800 images seen" in out
    quick_args = ["--list", "--scale", "quick", "--output", str(tmp_path / "q")]
    assert reproduce.main(["degradation", *quick_args]) == 0
    quick = capsys.readouterr().out
    # 15 epochs of 20 batches of 50 on the 1,000-image sample; the deep runs only on request.
    assert "resnet56v1" in quick and quick.count("15,000") == 10
    assert "to train: 120,000 images seen" in quick
    assert reproduce.main(["preact", *quick_args]) == 0
    assert "left out: trains on cifar100" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["degradations"], "unknown experiment 'degradations'"),
        (["degradation", "--scale", "huge"], "unknown scale 'huge'"),
        (["degradation", "--runs", "resnet20v1,resnet21v1"], "has no run 'resnet21v1'"),
        (["preact", "--scale", "quick", "--runs", "164-v2-c100"], "trains on cifar100"),
        (["depth", "--data-source", "folder:/nonexistent/cifar"], "/nonexistent/cifar"),
        (["depth", "--scale", "quick", "--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        reproduce.main([*argv, "--output", str(output)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not output.exists()


def test_a_folder_holding_another_run_is_refused_and_kept(tmp_path, capsys):
    output = tmp_path / "out"
    other = output / "plain20v1"
    other.mkdir(parents=True)
    (other / "config.json").write_text(json.dumps({"model": "resnet8v1", "seed": 3}))
    (other / "metrics.json").write_text("{}")
    before = {p: p.read_bytes() for p in other.iterdir()}
    with pytest.raises(SystemExit):
        reproduce.main(["degradation", "--scale", "quick", "--output", str(output)])
    err = capsys.readouterr().err
    assert "run plain20v1" in err and "other settings" in err and "never overwritten" in err
    assert {p: p.read_bytes() for p in other.iterdir()} == before
    assert sorted(p.name for p in output.iterdir()) == ["plain20v1"]


def test_devices_are_gpus_this_process_may_see(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert campaign_lib.resolve_devices(["1", "gpu:0"], available=8) == ["5", "3"]
    for specs, message in [
        (["2"], "names GPU 2, and this machine has 2 GPUs"),
        (["0", "gpu:0"], "names GPU 0 twice"),
        (["cpu:0"], "takes GPUs"),
        (["x"], "unknown device 'x'"),
    ]:
        with pytest.raises(UserError, match=message):
            campaign_lib.resolve_devices(specs, available=8)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UserError, match="has no GPU"):
        campaign_lib.resolve_devices(["0"], available=8)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert campaign_lib.resolve_devices(["0", "7"], available=8) == ["0", "7"]


def test_devices_that_are_not_there_are_one_line_from_the_command(tmp_path):
    result = cli(
        "training.reproduce", "degradation", "--devices", "99", "--output", str(tmp_path / "o")
    )
    assert "names GPU 99" in error_line(result)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# Tables, figures and the degradation check, from fabricated histories.


def _history(errors_train, errors_test, losses=None):
    return [
        {
            "epoch": i,
            "accuracy": 1 - a / 100,
            "val_accuracy": 1 - b / 100,
            "loss": losses[i] if losses else 2.0 - 0.1 * i,
        }
        for i, (a, b) in enumerate(zip(errors_train, errors_test, strict=True))
    ]


def _result(run, train, test, finished=True):
    history = _history(train, test)
    metrics = None
    if finished:
        metrics = {
            "final_train_error": train[-1] / 100,
            "final_test_error": test[-1] / 100,
            "iterations": 20 * len(train),
            "epochs": len(train),
            "wall_time_s": 12.5,
        }
    status = "finished" if finished else "unfinished"
    return tables.Result(run, status, history, metrics, 20, 4, params=270_000)


def _degradation_results(plain20, plain56, resnet20, resnet56):
    e = ex.EXPERIMENTS["degradation"]
    return [
        _result(e.run("plain20v1"), [80, 60, plain20], [85, 70, 65]),
        _result(e.run("plain56v1"), [90, 88, plain56], [90, 89, 88]),
        _result(e.run("resnet20v1"), [80, 50, resnet20], [82, 60, 55]),
        _result(e.run("resnet56v1"), [85, 70, resnet56], [86, 75, 70]),
    ]


def test_degradation_check_holds_only_when_the_paper_finding_does():
    holds = tables.degradation_finding(_degradation_results(42, 87, 27, 66))
    assert holds.holds is True
    assert (
        "plain-56 ends with a higher training error than plain-20 (87.0 % > 42.0 %)" in holds.text
    )
    assert "ResNet-20 below plain-20 (27.0 % < 42.0 %)" in holds.text
    assert "has not yet overtaken" in holds.remark  # ResNet-56 66 % >= ResNet-20 27 %
    assert holds.line().startswith("finding holds: ")

    overtaken = tables.degradation_finding(_degradation_results(42, 87, 27, 20))
    assert overtaken.holds is True and "ends below the shallower one" in overtaken.remark

    no_degradation = tables.degradation_finding(_degradation_results(60, 50, 27, 40))
    assert no_degradation.holds is False and "lower training error" in no_degradation.text
    assert no_degradation.line().startswith("finding does NOT hold: ")

    twin_above = tables.degradation_finding(_degradation_results(42, 87, 45, 66))
    assert (
        twin_above.holds is False
        and "ResNet-20 NOT below plain-20 (45.0 % >= 42.0 %)" in twin_above.text
    )

    results = _degradation_results(42, 87, 27, 66)
    for r in results[1:]:
        r.metrics = None  # unfinished runs are not compared
    assert tables.degradation_finding(results).holds is None


def test_table_and_figure_from_fabricated_histories(tmp_path):
    e = ex.EXPERIMENTS["degradation"]
    results = _degradation_results(42, 87, 27, 66)
    results.append(_result(e.run("plain32v1"), [70, 65], [80, 75], finished=False))
    found = tables.write(e, results, tmp_path, scale="quick", setting="Not the paper's setting.")
    assert found.holds is True
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["finding"]["holds"] is True and table["scale"] == "quick"
    row = {r["run"]: r for r in table["rows"]}
    assert row["resnet20v1"] == {
        "run": "resnet20v1", "network": "ResNet-20", "model": "resnet20v1", "options": {},
        "dataset": "cifar10", "params": 270_000, "paper_error": 8.75, "paper_note": "",
        "test_error": 55.0, "best_test_error": 55.0, "train_error": 27.0, "epochs": 3,
        "wall_s": 12.5, "status": "finished",
    }  # fmt: skip
    assert row["plain56v1"]["paper_error"] is None and row["plain56v1"]["best_test_error"] == 88.0
    assert row["plain32v1"]["status"] == "unfinished" and row["plain32v1"]["wall_s"] is None
    md = (tmp_path / "table.md").read_text()
    assert "| ResNet-20 | 0.27M | 8.75 | 55.00 | 55.00 | 27.00 | 3 | 12 s |" in md
    assert "unfinished: 2 of 4 epochs" in md and "Not the paper's setting." in md
    assert (
        "finding holds** (finished runs): training error" in md
        and "![degradation](figure.png)" in md
    )
    png = (tmp_path / "figure.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    _check_curves(tables.draw(e, results, "t"), {"plain networks": 6, "ResNets": 4})

    # The v2 paper's layout (training loss and test error on two axes), "fail" and the rows no
    # option expresses.
    s = ex.EXPERIMENTS["shortcuts"]
    results = [
        _result(s.run("original"), [50, 30, 20], [55, 40, 30]),
        _result(s.run("dropout-shortcut"), [90, 89, 88], [90, 90, 89]),
    ]
    assert tables.write(s, results, tmp_path / "s", scale="paper", setting="") is None
    md = (tmp_path / "s" / "table.md").read_text()
    assert "| dropout shortcut (0.5) | 0.27M | fail | 89.00 |" in md
    assert "paper: (> 20 %)" in md
    assert "not expressible: shortcut='scaling' scales F by 1 - λ" in md
    rows = json.loads((tmp_path / "s" / "table.json").read_text())["rows"]
    assert rows[-1]["run"] is None and rows[-1]["paper_note"] == ex.FAIL
    assert (tmp_path / "s" / "figure.png").stat().st_size > 10_000
    # Loss on the left axis, test error on the right one: two lines per run.
    _check_curves(tables.draw(s, results, "t"), {"constant scaling": 2, "dropout shortcut": 4})


def _check_curves(figure, expected):
    """Every curve lies inside its axes' limits; ``expected`` lines per panel title."""
    lines = {}
    for axes in figure.axes:
        title = axes.get_title() or next(
            a.get_title()
            for a in figure.axes
            if a is not axes and a.bbox.bounds == axes.bbox.bounds
        )
        (x0, x1), (y0, y1) = axes.get_xlim(), axes.get_ylim()
        for line in axes.get_lines():
            x, y = line.get_xdata(), line.get_ydata()
            assert len(x) and min(x) >= x0 and max(x) <= x1 + 1e-9, (title, x, x1)
            assert min(y) >= y0 and max(y) <= y1, (title, y, y1)
            lines[title] = lines.get(title, 0) + 1
    assert {t: n for t, n in lines.items() if t in expected} == expected


# ---------------------------------------------------------------------------------------------
# Real runs on the embedded sample.

TINY = ex.Experiment(
    "tiny",
    "plain-8 against ResNet-8",
    "a test",
    runs=(
        ex.Run("plain8v1", "plain-8", "plain8v1"),
        ex.Run("resnet8v1", "ResNet-8", "resnet8v1", twin="plain8v1"),
    ),
    panels=(ex.Panel("plain", ("plain8v1",)), ex.Panel("ResNets", ("resnet8v1",))),
    check="degradation",
)


@pytest.mark.slow
def test_tiny_experiment_trains_reuses_and_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(ex.EXPERIMENTS, "tiny", TINY)
    output = tmp_path / "tiny"
    argv = [
        "tiny",
        "--scale",
        "quick",
        "--epochs",
        "2",
        "--output",
        str(output),
        "--verbose",
        "line",
    ]

    # Killed after the first epoch of the first run: its backup is there, nothing else.
    original = cb.Backup.on_epoch_end

    def killed_after_epoch_one(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(cb.Backup, "on_epoch_end", killed_after_epoch_one)
    with pytest.raises(SystemExit) as exit_:
        reproduce.main(argv)
    assert exit_.value.code == 130
    assert (output / "plain8v1" / "backup").is_dir() and not (output / "resnet8v1").exists()
    assert not (output / "table.json").exists()
    monkeypatch.setattr(cb.Backup, "on_epoch_end", original)
    capsys.readouterr()

    # Re-running the command resumes the first run at epoch 2 and trains the second.
    code = reproduce.main(argv)
    out = capsys.readouterr().out
    assert "2 run(s) to train, 0 finished and reused" in out
    assert (
        "resuming" in out and "at epoch 2" in out and "epoch 1/2" in out
    )  # resnet8v1 from scratch
    table = json.loads((output / "table.json").read_text())
    holds = table["finding"]["holds"]
    assert code == (1 if holds is False else 0)
    assert table["finding"]["text"] in out
    rows = {r["run"]: r for r in table["rows"]}
    for name in ("plain8v1", "resnet8v1"):
        row = rows[name]
        assert row["status"] == "finished" and row["epochs"] == 2
        assert 0 <= row["train_error"] <= 100 and 0 <= row["test_error"] <= 100
        assert row["wall_s"] > 0 and row["params"] > 70_000
        history = (output / name / "history.csv").read_text().splitlines()
        assert [line.split(",")[0] for line in history[1:]] == ["0", "1"]
    # The same convolutions: option A shortcuts have no trainable parameters.
    assert rows["plain8v1"]["params"] == rows["resnet8v1"]["params"]
    assert (output / "figure.png").stat().st_size > 10_000
    metrics = {n: (output / n / "metrics.json").read_bytes() for n in rows}

    # Once more: both runs reused as they are, the table drawn again.
    assert reproduce.main(argv) == code
    out = capsys.readouterr().out
    assert "0 run(s) to train, 2 finished and reused" in out and "epoch 1/2" not in out
    assert {n: (output / n / "metrics.json").read_bytes() for n in rows} == metrics


def test_runs_go_out_one_per_device_in_parallel(tmp_path, capsys, monkeypatch):
    choices = campaign_lib.Choices(
        scale="quick", output=str(tmp_path / "d"), runs=("plain20v1", "resnet20v1", "plain56v1"),
        data_source=None, seed=5, epochs=3, verify_checksums=False,
    )  # fmt: skip
    campaign = campaign_lib.plan("degradation", choices)
    # Each run's process is this very command with --runs NAME, and trains only.
    command = campaign_lib.child_command(campaign, "plain56v1")
    assert command[:3] == [sys.executable, "-m", "training.reproduce"]
    args = reproduce.build_parser().parse_args(command[3:])
    assert (args.experiment, args.scale, args.runs, args.table) == (
        "degradation", "quick", ("plain56v1",), False,
    )  # fmt: skip
    assert (args.output, args.seed, args.epochs, args.verify_checksums) == (
        str(tmp_path / "d"), 5, 3, False,
    )  # fmt: skip
    # --native-logs goes out to the runs' processes too.
    assert not args.native_logs
    shown = dataclasses.replace(campaign, choices=dataclasses.replace(choices, native_logs=True))
    command = campaign_lib.child_command(shown, "plain56v1")
    assert reproduce.build_parser().parse_args(command[3:]).native_logs

    # The dispatch, in table order: one process per device at a time, each seeing only its device; a run that
    # fails is reported and the others go on. (The processes stand in for training runs: the
    # runs themselves are the command tested above.)
    log = tmp_path / "log"
    log.mkdir()
    child = (
        "import os, sys, time; run = sys.argv[1]; start = time.time(); time.sleep(1.0); "
        "open(os.path.join(sys.argv[2], run), 'w').write("
        "f\"{os.environ['CUDA_VISIBLE_DEVICES']} {start} {time.time()}\"); "
        "print('trained', run); sys.exit(3 if run == 'resnet20v1' else 0)"
    )
    monkeypatch.setattr(
        campaign_lib, "child_command", lambda c, run: [sys.executable, "-c", child, run, str(log)]
    )
    drawn = []
    failed = campaign_lib.train_on_devices(campaign, ["4", "6"], lambda: drawn.append(1))
    out = capsys.readouterr().out
    assert failed == ["resnet20v1"] and len(drawn) == 3
    assert "[plain20v1] trained plain20v1" in out and "resnet20v1: failed (exit status 3)" in out
    seen = {p.name: p.read_text().split() for p in log.iterdir()}
    device = {n: v[0] for n, v in seen.items()}
    assert (device["plain20v1"], device["plain56v1"]) == ("4", "6") and len(device) == 3
    starts = {n: (float(v[1]), float(v[2])) for n, v in seen.items()}
    assert starts["plain56v1"][0] < starts["plain20v1"][1]  # in parallel, in table order
    # The third run goes to the GPU freed first, once the run on it has ended.
    before = {"4": "plain20v1", "6": "plain56v1"}[device["resnet20v1"]]
    assert starts["resnet20v1"][0] >= starts[before][1]

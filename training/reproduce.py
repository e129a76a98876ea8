"""``python -m training.reproduce EXPERIMENT``: one of the papers' CIFAR experiments, as one command
(a ``training.command_line.Command``: ``training.experiments.runs`` plans and trains the runs of an
experiment of ``training.experiments.papers``, ``training.experiments.tables`` writes its table)."""

from __future__ import annotations

import argparse
import os

from training import options
from training.choices import VERBOSITY
from training.command_line import Command
from training.experiments import papers as experiments

LISTED = "".join(f"  {n:<12} {e.source}: {e.title}\n" for n, e in experiments.EXPERIMENTS.items())
EXAMPLES = f"""experiments:
{LISTED}
examples:
  # the degradation problem in about 15 minutes on 2 CPU cores (embedded sample, not the paper's setting)
  python -m training.reproduce degradation --scale quick

  # the full v1 Fig. 6 on CIFAR-10 (tfds), one run per GPU on a machine with 4 GPUs
  python -m training.reproduce degradation --devices 0,1,2,3

  # what an experiment trains and what it costs, without training
  python -m training.reproduce preact --list

  # two runs of Table 2 only, CIFAR-10 from the official archive in a local folder
  python -m training.reproduce placements --runs 110-original,110-full-preact \\
      --data-source folder:~/cifar-10-python.tar.gz

outputs (run folders, table.md, table.json, figure.png), reuse, resuming and --overwrite:
docs/experiments.md; exit status 1 when a run failed or the experiment's finding does not hold
"""


def add_options(p: argparse.ArgumentParser) -> None:
    """The experiment, its scale and runs, the data, and what is written."""
    p.add_argument("experiment", help=", ".join(experiments.EXPERIMENTS))
    p.add_argument(
        "--scale",
        default="paper",
        help="; ".join(f"{name}: {scale.description}" for name, scale in experiments.SCALES.items())
        + " (default: paper)",
    )
    p.add_argument("--output", help="folder of the experiment (default: runs/reproduce/...)")
    p.add_argument(
        "--list", action="store_true", help="print the runs and their cost; train nothing"
    )
    p.add_argument(
        "--runs",
        type=options.comma_separated(str),
        default=(),
        metavar="A,B",
        help="train these runs only (default: all at the paper scale, the CPU-sized ones at the "
        "quick scale; --list names them)",
    )
    p.add_argument(
        "--devices",
        type=options.comma_separated(str),
        default=(),
        metavar="LIST",
        help="GPUs to train on in parallel, one run per GPU, e.g. 0,1,2,3 (default: one run "
        "after another in this process)",
    )
    options.add_cifar_source(
        p,
        "tfds or folder:PATH (an official CIFAR archive, its extracted folder, or a folder "
        "holding the CIFAR-10 and CIFAR-100 archives); at the quick scale it replaces the "
        "embedded sample",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="seed of every run (default: 1 at the quick scale, a random seed per run, recorded, "
        "at the paper scale)",
    )
    p.add_argument("--epochs", type=int, help="train every run this many epochs instead")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace table.md, table.json and figure.png that another experiment (or anything "
        "else) wrote in --output",
    )
    p.add_argument("--no-table", dest="table", action="store_false", help="only train: no table")
    p.add_argument("--verbose", default="auto", help=f"{', '.join(VERBOSITY)} (default: auto)")


def reproduce(args: argparse.Namespace) -> int:
    """The stage: plan, train, write the table and the figure; print the finding (exit status 1
    when a run failed or the finding does not hold)."""
    # Here, not above: --help and usage errors answer before Keras loads.
    from training.experiments import runs, tables

    choices = runs.Choices(**options.given_fields(args, runs.Choices))
    devices: list[str] = []
    if args.devices:
        runs.get_experiment(args.experiment)  # name errors first, before the GPU count
        runs.check_devices(args.devices)
    if args.devices and not args.list:
        devices = runs.resolve_devices(args.devices, runs.count_gpus())
        # This process only plans and draws: the GPUs are the runs'.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    campaign = runs.plan(args.experiment, choices, load_data=not args.list)
    if args.list:
        print(runs.listing(campaign))
        return 0
    if args.table:
        tables.check_outputs(campaign.output, campaign.experiment, overwrite=args.overwrite)
    remaining = campaign.to_train()
    reused = len(campaign.selected) - len(remaining)
    print(
        f"{campaign.experiment.name} ({campaign.scale.name} scale): {len(remaining)} run(s) to "
        f"train, {reused} finished and reused; output {campaign.output}",
        flush=True,
    )

    def draw() -> tables.Finding | None:
        if not args.table:
            return None
        return tables.write(
            campaign.experiment,
            tables.collect(campaign),
            campaign.output,
            scale=campaign.scale.name,
            setting=runs.setting(campaign),
        )

    if devices:
        failed = runs.train_on_devices(campaign, devices, draw)
    else:
        failed = runs.train_here(campaign, draw)
    found = draw()
    if args.table:
        print(f"table: {campaign.output / tables.TABLE_MD}", flush=True)
        print(f"figure: {campaign.output / tables.FIGURE}", flush=True)
    if found is not None:
        print(found.line(), flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
    return 1 if failed or (found is not None and found.holds is False) else 0


COMMAND = Command(
    "reproduce",
    description="Train the networks of one of the papers' CIFAR experiments with the papers' "
    "recipe (or a CPU-sized one), then write a table beside the paper's numbers and a figure in "
    "the paper's layout.",
    examples=EXAMPLES,
    groups=(add_options,),
    stage=reproduce,
)
build_parser, main = COMMAND.build_parser, COMMAND.main

if __name__ == "__main__":
    COMMAND.exit()

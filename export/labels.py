"""Class names the serving signatures return: built-in CIFAR lists or one name per line of a file."""

from __future__ import annotations

from pathlib import Path

from keras_preact.command_line import UserError
from keras_preact.labels import label_names

# The CIFAR label sets of keras_preact.labels: cifar10 and cifar100 (fine labels).
BUILTIN_LABELS: dict[str, tuple[str, ...]] = {
    name: label_names(name) for name in ("cifar10", "cifar100")
}


def resolve_labels(spec: str | None, classes: int) -> tuple[str, ...]:
    """Label names for a ``classes``-way classifier.

    Args:
        spec: ``"cifar10"``, ``"cifar100"``, a path to a UTF-8 text file with one name per line,
            or ``None`` to pick by class count (10 -> cifar10, 100 -> cifar100, otherwise the
            class ids as strings).
        classes: number of model outputs; the names must match it exactly.

    Raises:
        UserError: unknown name, unreadable file, or a count that differs from ``classes``.
    """
    if spec is None:
        by_count = {len(v): v for v in BUILTIN_LABELS.values()}
        return by_count.get(classes, tuple(str(i) for i in range(classes)))
    if spec in BUILTIN_LABELS:
        names = BUILTIN_LABELS[spec]
        source = f"--labels {spec}"
    else:
        path = Path(spec)
        if not path.is_file():
            raise UserError(
                f"--labels {spec!r} is neither {' nor '.join(BUILTIN_LABELS)} nor an existing file"
            )
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read labels file {spec}: {e}") from None
        names = tuple(line.strip() for line in lines if line.strip())
        source = f"labels file {spec}"
    if len(names) != classes:
        raise UserError(f"{source} has {len(names)} names but the model has {classes} classes")
    return names

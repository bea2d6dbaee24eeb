"""The facts every layer shares, said once: tasks, how weights are applied, the space's
sections and the key that picks each section's component.

This module imports nothing from weightsearch and nothing heavy.
"""

from __future__ import annotations

TASKS = ("binary", "multiclass", "multilabel")

#: How class weights reach the loss: a weighted loss, per-row ``sample_weight`` or Keras's
#: ``class_weight``. All three give the same loss (tests/test_losses.py).
#: ``data.categorical = "auto"``: non-numeric and bool columns are categorical.
CATEGORICAL_AUTO = "auto"
#: ``data.missing``: impute (median + indicator, or the OOV bucket) or refuse a hole.
MISSING_MODES = ("impute", "error")
APPLICATIONS = ("loss", "sample_weight", "class_weight")
#: The final model (``search.final``, ``train.final``): retrained on the whole training part,
#: or the chosen trial's K fold models averaged (already trained by the CV).
FINAL_MODELS = ("refit", "fold_ensemble")

SPACE_SECTIONS = ("weighting", "loss", "model", "train")

#: The key of each space section that picks the component; the section's other keys are the
#: component's parameters. ``train`` picks nothing.
CHOICE_KEYS: dict[str, str | None] = {
    "weighting": "scheme",
    "loss": "name",
    "model": "arch",
    "train": None,
}

#: The sections whose component is chosen, with their choice key.
COMPONENT_KEYS: dict[str, str] = {s: k for s, k in CHOICE_KEYS.items() if k is not None}

#: Why ``class_weight`` cannot weight multi-hot targets (the one wording of this rule).
CLASS_WEIGHT_MULTILABEL = (
    "Keras's class_weight cannot weight multi-hot targets (it takes their argmax, so each "
    "row would get one label's weight); use 'loss' or 'sample_weight'."
)


def check_task(task: object, where: str = "task") -> str:
    """``task`` if it is one of :data:`TASKS`, else ``ValueError`` naming ``where``."""
    if task not in TASKS:
        raise ValueError(f"{where} must be one of {', '.join(TASKS)}, but got {task!r}.")
    return str(task)


def application_problem(application: str, task: str) -> str | None:
    """Why ``application`` cannot apply weights for ``task``, or ``None`` when it can."""
    if application == "class_weight" and task == "multilabel":
        return CLASS_WEIGHT_MULTILABEL
    return None




def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name when it has
    none (``str(exc).splitlines()[0]`` raises ``IndexError`` on an empty message)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


__all__ = [
    "APPLICATIONS",
    "CHOICE_KEYS",
    "CLASS_WEIGHT_MULTILABEL",
    "COMPONENT_KEYS",
    "FINAL_MODELS",
    "SPACE_SECTIONS",
    "TASKS",
    "application_problem",
    "check_task",
    "first_line",
]

"""The one rule by which tools extend the trainer: :class:`Extension`.

An extension is a class with a ``key``, the ``options`` it adds to the training recipe, and some of the hooks
below. :class:`emo.trainer.Trainer` calls them; ``python -m emo.train`` turns each extension's options into
command-line flags and recipe fields (:func:`emo.recipe.recipe_with`), so an extension's option is declared
once, in its own file. The rule for combining several extensions:

1. **Observing hooks run for every extension, in order**: ``setup`` (once the model and optimiser exist) and
   ``after_epoch`` (after each epoch's training; it may add columns to the history row). They return nothing.
2. **Deciding hooks are exclusive**: ``schedule`` (the learning-rate schedule instead of One-Cycle),
   ``batch_targets`` with ``loss`` (the batch's loss), ``model_to_score`` (the model validated and saved
   instead of the trained one) and ``finish`` (score and store the best checkpoint at the end). At most one
   extension of a run may override each; two that do are refused when the trainer starts, in one line that
   names both (:func:`check_extensions`).
3. **Each keeps its own**: its state in ``last.pt`` under ``extensions[key]`` (``state_dict`` /
   ``load_state_dict``), and the checkpoint entries it returns from ``meta`` (each entry claimed by one
   extension only, and named in :data:`emo.checkpoint.META`).

This module imports nothing else of ``emo`` (``trainer`` in the hooks below is the calling
:class:`emo.trainer.Trainer`, typed ``Any`` so that the two modules do not import each other).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import torch

Trainer = Any  # an emo.trainer.Trainer


@dataclass(frozen=True)
class Option:
    """One option an extension adds: a recipe field ``name`` and the flag ``--name-with-dashes``.

    ``type`` converts the command line's text (None for a switch: a bool that defaults to False);
    ``help`` is the flag's help text."""

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] | None = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class Extension:
    """A hook into :class:`emo.trainer.Trainer`. Every hook does nothing by default; an extension overrides
    what it needs, under the rule in this module's docstring."""

    #: names the extension: its state in last.pt, its line in conflicts
    key: ClassVar[str] = ""
    #: the options it adds to the recipe (see :class:`Option`)
    options: ClassVar[tuple[Option, ...]] = ()
    #: one line for the training log: what this extension does in this run (set in ``setup``)
    note = ""
    #: False where a run cannot go on from ``best_model.pt`` alone (the extension's state lives only in last.pt)
    resumes_from_best = True
    #: True where the extension's schedule does not depend on ``epochs``, so a run may resume with another
    epochs_free = False

    @classmethod
    def wanted(cls, cfg: Any) -> bool:
        """Whether the recipe ``cfg`` asks for this extension."""
        return False

    @classmethod
    def from_config(cls, cfg: Any) -> "Extension":
        """This extension as the recipe ``cfg`` configures it."""
        return cls()

    @classmethod
    def check(cls, cfg: Any) -> None:
        """Refuse, with a ValueError naming the option, values of this extension's options that cannot work."""

    # -- observing hooks: every extension's runs ------------------------------------------------
    def setup(self, trainer: Trainer) -> None:
        """Called once the model (on its device) and the optimiser exist, before the schedule is made."""

    def after_epoch(self, trainer: Trainer, row: dict[str, float]) -> None:
        """After each epoch's training, before validation; may add columns to the history ``row``."""

    # -- deciding hooks: at most one extension overrides each -----------------------------------
    def schedule(self, trainer: Trainer) -> torch.optim.lr_scheduler.LRScheduler | None:
        """A learning-rate schedule to use instead of One-Cycle."""
        return None

    def batch_targets(self, trainer: Trainer, idx: torch.Tensor) -> torch.Tensor | None:
        """Per-face targets (B x K) of the faces ``idx``, MixUp-blended with the same partners as the labels."""
        return None

    def loss(self, trainer: Trainer, logits: torch.Tensor, x: torch.Tensor, loss: torch.Tensor,
             targets: torch.Tensor | None) -> torch.Tensor:
        """The batch's loss, given the focal loss on the labels and this extension's blended ``targets``."""
        return loss

    def model_to_score(self, trainer: Trainer) -> torch.nn.Module | None:
        """After each epoch: the model to validate and save instead of ``trainer.model``."""
        return None

    def finish(self, trainer: Trainer) -> dict[str, Any] | None:
        """After training: the best checkpoint, scored and stored by this extension (instead of the trainer)."""
        return None

    # -- what each keeps under its own key --------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """Entries stored in every checkpoint the run writes (each named in :data:`emo.checkpoint.META`)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What ``last.pt`` must hold for this extension to resume (stored under ``extensions[key]``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from what :meth:`state_dict` returned."""


#: The hooks that decide something, which at most one extension of a run may override.
EXCLUSIVE = ("schedule", ("batch_targets", "loss"), "model_to_score", "finish")


def _overrides(ext: Extension, hook: str | tuple[str, ...]) -> bool:
    names = (hook,) if isinstance(hook, str) else hook
    return any(getattr(type(ext), n) is not getattr(Extension, n) for n in names)


def check_extensions(extensions: Sequence[Extension]) -> None:
    """Refuse, in one line, two extensions that claim one exclusive hook, or share a key."""
    keys = [e.key or type(e).__name__ for e in extensions]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"extension {twice[0]!r} is given twice: give each extension once")
    for hook in EXCLUSIVE:
        claim = [k for k, e in zip(keys, extensions) if _overrides(e, hook)]
        if len(claim) > 1:
            name = hook if isinstance(hook, str) else "/".join(hook)
            raise ValueError(f"extensions {claim[0]!r} and {claim[1]!r} both decide {name!r}, which one extension "
                             "may decide: use them in separate runs")


def merged_meta(extensions: Sequence[Extension]) -> dict[str, Any]:
    """The checkpoint entries of all ``extensions``, refusing an entry that two of them claim."""
    meta: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for ext in extensions:
        for k, v in ext.meta().items():
            if k in meta:
                raise ValueError(f"extensions {owner[k]!r} and {ext.key!r} both write the checkpoint entry {k!r}")
            meta[k], owner[k] = v, ext.key
    return meta

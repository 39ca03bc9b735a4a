"""The dialog engine: flows from ``dialogs/*.yaml`` run as a pure function of state and event.

    load_dialogs(directory, catalogs=None) -> Dialogs      raises DialogErrors
    check_dialogs(directory, catalogs=None) -> (Dialogs | None, errors)
    step(dialogs, state, event, catalogs) -> StepResult    pure: no I/O
    resume(dialogs, state, catalogs, menu=False) -> StepResult   the current question again

Events are ``bot.channel`` events plus ``ActionResult``; results carry
``OutMessage`` values and ``ActionCall`` values for the caller to run.

Typed text at a question of buttons that names a journey is offered as that
journey's main-menu button ("did you mean"); the journeys are found by
``bot.understanding`` from the ``phrasings:`` of the dialog files
(``bot.engine.phrasings``).
"""

from __future__ import annotations

from pathlib import Path

from bot.engine.checks import (
    check_guarded_paths,
    check_names,
    check_reachability,
    check_references,
    check_translations,
)
from bot.engine.events import ActionCall, ActionResult, EngineEvent, OutMessage, StepResult
from bot.engine.loader import DialogErrors, read_dialogs
from bot.engine.machine import resume, step
from bot.engine.model import Dialogs
from bot.engine.phrasings import check_phrasings
from bot.engine.render import render_message
from bot.engine.state import Frame, State
from bot.i18n import Catalogs

__all__ = [
    "ActionCall",
    "ActionResult",
    "DialogErrors",
    "Dialogs",
    "EngineEvent",
    "Frame",
    "OutMessage",
    "State",
    "StepResult",
    "check_dialogs",
    "load_dialogs",
    "render_message",
    "resume",
    "step",
]


def check_dialogs(
    directory: Path, catalogs: Catalogs | None = None
) -> tuple[Dialogs | None, list[str]]:
    """Load and check a dialogs folder; every problem found, as ``file:line: message``.

    Translations are checked only when ``catalogs`` is given. The meaning checks
    run once every file has passed the schema (they would repeat its errors).
    """
    dialogs, errors = read_dialogs(directory)
    if errors:
        return None, errors
    errors = [
        *check_references(dialogs),
        *check_names(dialogs),
        *check_reachability(dialogs),
        *check_guarded_paths(dialogs),
        *check_phrasings(dialogs),
    ]
    if catalogs is not None:
        errors += check_translations(dialogs, catalogs)
    return (None if errors else dialogs), errors


def load_dialogs(directory: Path, catalogs: Catalogs | None = None) -> Dialogs:
    """The checked dialogs of ``directory``; DialogErrors lists every problem."""
    dialogs, errors = check_dialogs(directory, catalogs)
    if dialogs is None:
        raise DialogErrors(errors)
    return dialogs

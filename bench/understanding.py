"""Free text: top-1 accuracy per locale on the evaluation set, and the time per message.

The evaluation set (``bench/understanding_eval.yaml``) is kept apart from the
example phrasings in ``dialogs/*.yaml``: messages as customers type them, with
typos, missing diacritics, inflected forms and colloquial wording. Its
``none`` messages name no journey; how many of them are left alone is shown
for information. The target is 90% top-1 in every locale (the suite holds it
too, in ``tests/test_understanding.py``); the bench fails below it.

Times: the matcher alone per message, cold (word caches emptied, every
message new) and warm (the same messages again), and a whole engine step on a
typed message at the main menu, with the ratio of the two in this run.
"""

from __future__ import annotations

import time
from typing import Any

import yaml

from bot.channel import Start, Text
from bot.engine import State, load_dialogs, step
from bot.i18n import SHIPPED_LOCALES, Catalogs
from bot.understanding import features
from common.settings import REPO_ROOT

EVALUATION = REPO_ROOT / "bench" / "understanding_eval.yaml"
TARGET = 0.9
SECONDS = 1.0


def _evaluation() -> dict[str, dict[str, list[str]]]:
    data: Any = yaml.safe_load(EVALUATION.read_text(encoding="utf-8"))
    return {str(k): {str(j): [str(t) for t in ts] for j, ts in v.items()} for k, v in data.items()}


def _per_message(run: Any, messages: list[str]) -> float:
    """Seconds per message of ``run`` over ``messages``, repeated for about ``SECONDS``."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        for message in messages:
            run(message)
        count += len(messages)
    return (time.perf_counter() - started) / count


def main() -> int:
    """Print accuracy per locale and the time per message; 1 if a locale is under the target."""
    dialogs = load_dialogs(REPO_ROOT / "dialogs")
    catalogs = Catalogs.load(REPO_ROOT / "locales")
    evaluation = _evaluation()
    print(
        f"understanding: {len(dialogs.phrasings)} example phrasings; "
        f"evaluation set {EVALUATION.relative_to(REPO_ROOT)}"
    )
    print(f"  {'locale':<8} {'top-1':>6} {'right':>6} {'of':>4}   {'none left alone':>15}")
    failed = False
    everything: list[str] = []
    features.word_stems.cache_clear()
    features.word_grams.cache_clear()
    cold_started = time.perf_counter()
    matcher = dialogs.matcher
    build = time.perf_counter() - cold_started
    cold_seconds, cold_count = 0.0, 0
    for locale in SHIPPED_LOCALES:
        by_journey = evaluation.get(locale, {})
        right = total = left_alone = nothing = 0
        for journey, texts in by_journey.items():
            for text in texts:
                started = time.perf_counter()
                guess = matcher.guess(text)
                cold_seconds += time.perf_counter() - started
                cold_count += 1
                everything.append(text)
                if journey == "none":
                    nothing += 1
                    left_alone += guess.journey is None
                else:
                    total += 1
                    right += guess.journey == journey
        accuracy = right / total if total else 0.0
        failed |= accuracy < TARGET
        print(
            f"  {locale:<8} {accuracy:>6.1%} {right:>6} {total:>4}   {left_alone:>9} of {nothing}"
            + ("   BELOW TARGET" if accuracy < TARGET else "")
        )
    warm = _per_message(matcher.guess, everything)
    state = step(dialogs, State(), Start("en"), catalogs).state
    engine = _per_message(lambda text: step(dialogs, state, Text(text), catalogs), everything)
    print(f"  matcher built in {build * 1e3:.1f} ms (once per dialogs load)")
    print(
        f"  per message, cold   {cold_seconds / cold_count * 1e6:8.0f} µs ({cold_count} messages)"
    )
    print(f"  per message, warm   {warm * 1e6:8.0f} µs")
    print(
        f"  engine step on typed text at the menu {engine * 1e6:8.0f} µs "
        f"(matcher = {warm / engine:.0%} of it)"
    )
    print(f"  target: {TARGET:.0%} top-1 in every locale: {'FAILED' if failed else 'met'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which journey a typed message names: nearest example phrasing, by TF-IDF cosine.

Every example phrasing (``phrasings:`` in ``dialogs/*.yaml``) becomes a
weighted feature vector (``bot.understanding.features``); features that many
phrasings share ("I want", "my", "please") weigh little. A message is scored
against every phrasing through an inverted index, and a journey scores as its
best phrasing. Before that, a typed word the phrasings never use is replaced
by its nearest word that they do (rapidfuzz, Levenshtein), if one is close
and starts with the same letter (people rarely mistype the first one; without
that rule ``there`` would be read as ``where``): ``delte`` is read as
``delete``, ``маркетинга`` stays itself.

All in memory, no network: building takes milliseconds, a message well under one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from bot.understanding.features import features, strip_marks, words

# Below this a message names nothing we know; tuned on the evaluation set (bench/understanding.py).
THRESHOLD = 0.2
# Another journey is offered beside the best one when it scores at least this share of it,
# and at least the floor: below it, what two texts share is mostly "I want" and "my".
ALTERNATIVE_SHARE = 0.55
ALTERNATIVE_FLOOR = 0.3
MAX_ALTERNATIVES = 2
# How close a typed word must be to a known one to be read as it (normalized Levenshtein).
TYPO_SIMILARITY = 0.75
TYPO_MIN_LENGTH = 4


def examples_of(phrasings: Mapping[str, Mapping[str, Sequence[str]]]) -> Iterator[str]:
    """Every example text, whatever its journey and locale."""
    for by_locale in phrasings.values():
        for examples in by_locale.values():
            yield from examples


@dataclass(frozen=True)
class Guess:
    """What a message names: the best journey and up to two alternatives, or nothing."""

    journey: str | None
    alternatives: tuple[str, ...] = ()
    score: float = 0.0

    @property
    def offers(self) -> tuple[str, ...]:
        """The journeys to offer, best first (empty when nothing was understood)."""
        return () if self.journey is None else (self.journey, *self.alternatives)


class Matcher:
    """Matches typed messages to journeys by their example phrasings, in every locale at once."""

    def __init__(self, phrasings: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
        """``phrasings`` maps journey → locale → example texts."""
        self.journeys: list[str] = []
        vectors = []
        for journey, by_locale in phrasings.items():
            for example in examples_of({journey: by_locale}):
                self.journeys.append(journey)
                vectors.append(features(example))
        count = len(vectors)
        document_frequency: dict[str, int] = defaultdict(int)
        for vector in vectors:
            for feature in vector:
                document_frequency[feature] += 1
        self._idf = {
            f: math.log((count + 1) / (df + 1)) + 1 for f, df in document_frequency.items()
        }
        self._unseen_idf = math.log(count + 1) + 1
        self._index: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for number, vector in enumerate(vectors):
            weighted = {f: w * self._idf[f] for f, w in vector.items()}
            norm = math.sqrt(sum(w * w for w in weighted.values())) or 1.0
            for feature, weight in weighted.items():
                self._index[feature].append((number, weight / norm))
        vocabulary = {strip_marks(w) for example in examples_of(phrasings) for w in words(example)}
        self._known = frozenset(vocabulary)
        self._by_initial: dict[str, list[str]] = defaultdict(list)
        for word in sorted(vocabulary):
            self._by_initial[word[0]].append(word)

    def corrections(self, text: str) -> tuple[str, ...]:
        """Known words that typed words not in any phrasing were probably meant to be."""
        found = []
        for word in words(text):
            plain = strip_marks(word)
            if len(plain) < TYPO_MIN_LENGTH or plain in self._known:
                continue
            best = process.extractOne(
                plain,
                self._by_initial.get(plain[0], ()),
                scorer=Levenshtein.normalized_similarity,
                score_cutoff=TYPO_SIMILARITY,
            )
            if best is not None:
                found.append(best[0])
        return tuple(found)

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every journey with a phrasing in common with the message, best first, with its score."""
        vector = features(text, self.corrections(text))
        weighted = {f: w * self._idf.get(f, self._unseen_idf) for f, w in vector.items()}
        norm = math.sqrt(sum(w * w for w in weighted.values()))
        if not norm:
            return []
        scores: dict[int, float] = defaultdict(float)
        for feature, weight in weighted.items():
            for number, example_weight in self._index.get(feature, ()):
                scores[number] += weight * example_weight
        best: dict[str, float] = {}
        for number, score in scores.items():
            journey = self.journeys[number]
            if score > best.get(journey, 0.0):
                best[journey] = score
        return sorted(((j, s / norm) for j, s in best.items()), key=lambda item: -item[1])

    def guess(self, text: str) -> Guess:
        """The journey the message names, with close alternatives; ``journey`` None if none."""
        ranked = self.rank(text)
        if not ranked or ranked[0][1] < THRESHOLD:
            return Guess(None, score=ranked[0][1] if ranked else 0.0)
        journey, top = ranked[0]
        alternatives = tuple(
            j for j, score in ranked[1:] if score >= max(ALTERNATIVE_FLOOR, top * ALTERNATIVE_SHARE)
        )[:MAX_ALTERNATIVES]
        return Guess(journey, alternatives, top)

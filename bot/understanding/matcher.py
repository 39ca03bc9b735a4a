"""Which journey a typed message names: nearest example phrasing, by TF-IDF cosine.

Every example phrasing (``phrasings:`` in ``dialogs/*.yaml``) becomes a
weighted feature vector (``bot.understanding.features``); features that many
phrasings share ("I want", "my", "please") weigh little. A message is scored
against every phrasing through an inverted index, and a journey scores as a
blend of its best phrasing and of its phrasings in one locale taken together
(what they say most often outweighs a word one of them happens to use).

Journeys that share words ("delete my data", "a copy of my data") are told
apart by what only one of them says: a feature weighs less the more evenly
the journeys' phrasings share it, and a feature that no other journey uses and
many of one journey's phrasings do *marks* that journey; a message with some
journey's mark scores ``UNMARKED`` of its score for the journeys it has no
mark of ("delete the data you hold about me" is erasure, though access's
phrasings say "hold about me"). Before scoring, a typed word the phrasings never use is replaced
by its nearest word that they do (rapidfuzz, Levenshtein), if one is close
and starts with the same letter (people rarely mistype the first one; without
that rule ``there`` would be read as ``where``): ``delte`` is read as
``delete``, ``маркетинга`` stays itself.

All in memory, no network: building takes milliseconds, a message well under one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from bot.understanding.features import features, meaningful, strip_marks, words

# Below this a message names nothing we know; tuned on the evaluation set (bench/understanding.py).
THRESHOLD = 0.19
# Another journey is offered beside the best one when it scores at least this share of it,
# and at least the floor: below it, what two texts share is mostly "I want" and "my".
ALTERNATIVE_SHARE = 0.5
ALTERNATIVE_FLOOR = 0.2
MAX_ALTERNATIVES = 2
# The least a feature weighs (times its IDF) however evenly the journeys share it;
# one that a single journey's phrasings use weighs 1 (``_journey_spread``).
SHARED_WEIGHT = 0.25
# A journey's score: this share of its best phrasing's, the rest of its phrasings'
# in one locale taken together.
BEST_SHARE = 0.7
# Contrast: when a message has a word that marks some journey ("delete" marks erasure),
# a journey it has no mark of scores this share ("delete the data you hold about me"
# shares "hold about me" with access, but nothing that marks access).
UNMARKED = 0.5
# A feature marks a journey when no other journey's phrasings have it and at least
# MARK_USES and MARK_SHARE of the journey's phrasings in one locale do; a message
# carries a mark when the marks make up at least MARK_EVIDENCE of its weight.
MARK_USES = 2
MARK_SHARE = 0.3
MARK_EVIDENCE = 0.01
# How close a typed word must be to a known one to be read as it (normalized Levenshtein).
TYPO_SIMILARITY = 0.75
TYPO_MIN_LENGTH = 4


def _journey_spread(
    journeys: Sequence[str], vectors: Sequence[Mapping[str, float]]
) -> dict[str, float]:
    """How much each feature tells journeys apart: 1 when one journey's phrasings use it.

    The weight is the largest of a feature's shares of the journeys' phrasings
    (each as a fraction of that journey's phrasings, so a journey with many
    examples does not count more), as part of their sum: 1 for one journey only,
    1/2 for two evenly ("my data" in "delete my data" and "a copy of my data"),
    never under ``SHARED_WEIGHT``.
    """
    size: dict[str, int] = defaultdict(int)
    for journey in journeys:
        size[journey] += 1
    per_journey: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for journey, vector in zip(journeys, vectors, strict=True):
        for feature in vector:
            per_journey[feature][journey] += 1
    spread: dict[str, float] = {}
    for feature, counts in per_journey.items():
        shares = [n / size[j] for j, n in counts.items()]
        top = max(shares) / sum(shares)
        spread[feature] = max(SHARED_WEIGHT, top)
    return spread


def _marks(groups: Sequence[tuple[str, str]], vectors: Sequence[Collection[str]]) -> dict[str, str]:
    """Features that mark a journey: no other journey's phrasings have them, and many of its
    phrasings in one locale do (at least ``MARK_SHARE``).

    "delete", "dzēs", "删" mark erasure; "copy", "kopij", "副本" mark access;
    "my data" marks nothing (both use it), nor does a word one phrasing happens to use.
    ``vectors`` are the phrasings' meaningful features (``features.meaningful``): a
    filler word marks nothing, though one journey's examples say "manus datus"
    (accusative, as "delete" takes it) and another's "manu datu kopiju".
    """
    size: dict[tuple[str, str], int] = defaultdict(int)
    uses: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for group, vector in zip(groups, vectors, strict=True):
        size[group] += 1
        for feature in vector:
            uses[feature][group] += 1
    marks: dict[str, str] = {}
    for feature, by_group in uses.items():
        journeys = {journey for journey, _ in by_group}
        if len(journeys) == 1 and any(
            n >= MARK_USES and n / size[group] >= MARK_SHARE for group, n in by_group.items()
        ):
            marks[feature] = journeys.pop()
    return marks


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
        meanings = []
        groups: list[tuple[str, str]] = []
        for journey, by_locale in phrasings.items():
            for locale, examples in by_locale.items():
                for example in examples:
                    self.journeys.append(journey)
                    groups.append((journey, locale))
                    vectors.append(features(example))
                    meanings.append(meaningful(example))
        count = len(vectors)
        document_frequency: dict[str, int] = defaultdict(int)
        for vector in vectors:
            for feature in vector:
                document_frequency[feature] += 1
        spread = _journey_spread(self.journeys, vectors)
        self._marks = _marks(groups, meanings)
        self._idf = {
            f: (math.log((count + 1) / (df + 1)) + 1) * spread[f]
            for f, df in document_frequency.items()
        }
        self._unseen_idf = math.log(count + 1) + 1
        self._index: dict[str, list[tuple[int, float]]] = defaultdict(list)
        # Each journey's phrasings in one locale, summed: what they say most often
        # ("delete", "copy") outweighs a word one phrasing happens to use ("savus").
        self._groups = sorted(set(groups))
        group_number = {group: n for n, group in enumerate(self._groups)}
        sums: list[dict[str, float]] = [defaultdict(float) for _ in self._groups]
        for number, vector in enumerate(vectors):
            weighted = {f: w * self._idf[f] for f, w in vector.items()}
            norm = math.sqrt(sum(w * w for w in weighted.values())) or 1.0
            for feature, weight in weighted.items():
                self._index[feature].append((number, weight / norm))
                sums[group_number[groups[number]]][feature] += weight / norm
        self._group_index: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for number, summed in enumerate(sums):
            norm = math.sqrt(sum(w * w for w in summed.values())) or 1.0
            for feature, weight in summed.items():
                self._group_index[feature].append((number, weight / norm))
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
        together: dict[int, float] = defaultdict(float)
        for feature, weight in weighted.items():
            for number, group_weight in self._group_index.get(feature, ()):
                together[number] += weight * group_weight
        overall: dict[str, float] = {}
        for number, score in together.items():
            journey = self._groups[number][0]
            overall[journey] = max(overall.get(journey, 0.0), score)
        # A journey is marked when its marks carry a fair share of the message, not
        # when one trigram of a word happens to be among them.
        evidence: dict[str, float] = defaultdict(float)
        for feature, weight in weighted.items():
            if feature in self._marks:
                evidence[self._marks[feature]] += weight * weight / (norm * norm)
        marked = {j for j, share in evidence.items() if share >= MARK_EVIDENCE}
        blended = {
            j: (BEST_SHARE * best.get(j, 0.0) + (1 - BEST_SHARE) * overall.get(j, 0.0))
            / norm
            * (1.0 if j in marked or not marked else UNMARKED)
            for j in best.keys() | overall.keys()
        }
        return sorted(blended.items(), key=lambda item: -item[1])

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

"""What a typed message is made of, for matching: word stems, character trigrams, Han n-grams.

The same function turns the product teams' example phrasings and the
customer's message into features, so whatever it forgives on one side it
forgives on the other:

- case, width and diacritics (``dzest`` is ``dzēst``, ``удалить`` with ``ё``/``й`` or without);
- inflection: Russian and English words are stemmed by Snowball, Latvian words
  lose their case and verb endings (Snowball has no Latvian), and every word
  also gives its character trigrams, which share most of a word across its forms;
- Chinese written without spaces: each Han character and each pair of neighbours;
- filler: words such as "I", "have", "my", "manus", "хочу", "lūdzu", "我", "的" (the
  stopwords-iso lists, with the pronouns they lack) and pairs of Chinese filler
  characters ("我的", "给我") weigh less, so "I have a question" does not look like
  "I have a new mobile number"; ``meaningful`` is a text's features without them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict

import snowballstemmer
import stopwordsiso

_RUSSIAN = snowballstemmer.stemmer("russian")
_ENGLISH = snowballstemmer.stemmer("english")

# Latvian noun, adjective and verb endings, diacritics already removed, longest first.
_LATVIAN_ENDINGS = (
    "ajiem", "ajam", "ajai", "ajas", "iem", "sim", "siet", "sit", "am", "as", "ai",
    "em", "es", "os", "us", "ie", "is", "ei", "a", "e", "i", "u", "s", "o",
)  # fmt: skip
_MIN_STEM = 3

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W\d_]+|\d+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")

# A whole-word stem says more than one of its trigrams.
STEM_WEIGHT = 1.0
GRAM_WEIGHT = 0.35
HAN_WEIGHT = 1.0
# How much a filler word (or Han character) counts beside a word that carries meaning.
FILLER_WEIGHT = 0.3


def strip_marks(text: str) -> str:
    """The text without combining marks: ``ē`` → ``e``, ``й`` → ``и``, ``ё`` → ``е``."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# Personal and possessive pronouns the stopwords-iso lists lack: its Latvian list has
# none ("manus datus" would weigh, and tell journeys apart, as much as "dzēst"), its
# Russian one some forms of "мой" and "свой" only. English "my", "me" and Chinese 我, 的
# are filler there already.
_PRONOUNS = {
    "lv": """es mani man manis mēs mūs mums mūsu tu tevi tev tevis jūs jums jūsu
        mans mana manu manus manas mani manā manam manai maniem manām manējais
        savs sava savu savus savas savi savā savam savai saviem savām
        tavs tava tavu tavus tavas tavi tavā
        viņš viņa viņu viņam viņai viņi viņas viņiem viņām""",
    "ru": """мой моя моё мою моего моему моей моём мои моих моим моими
        свой своя своё свою своего своему своей своём свои своих своим своими""",
}


def _filler() -> tuple[frozenset[str], frozenset[str]]:
    """Filler words of the shipped languages (diacritics removed), and Chinese filler."""
    words = set(stopwordsiso.stopwords(["en", "lv", "ru"]))
    for pronouns in _PRONOUNS.values():
        words.update(pronouns.split())
    return frozenset(strip_marks(w.casefold()) for w in words), frozenset(
        stopwordsiso.stopwords("zh")
    )


FILLER, HAN_FILLER = _filler()


def _latvian_stem(word: str) -> str:
    for ending in _LATVIAN_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= _MIN_STEM:
            return word[: -len(ending)]
    return word


@functools.lru_cache(maxsize=8192)
def word_stems(word: str) -> tuple[str, ...]:
    """The stems a (case-folded) word may have, diacritics removed."""
    if _CYRILLIC.search(word):
        return (strip_marks(_RUSSIAN.stemWord(word.replace("ё", "е"))),)
    plain = strip_marks(word)
    return tuple({_ENGLISH.stemWord(plain), _latvian_stem(plain)})


@functools.lru_cache(maxsize=8192)
def word_grams(word: str) -> tuple[str, ...]:
    """Character trigrams of a word with its edges marked (``<dz``, ``dze``, …, ``st>``)."""
    padded = f"<{strip_marks(word)}>"
    return tuple(padded[i : i + 3] for i in range(len(padded) - 2))


def words(text: str) -> list[str]:
    """The non-Han words of a text, case-folded (Han runs are left to ``han_grams``)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WORD.findall(_HAN.sub(" ", folded))


def han_grams(text: str) -> list[str]:
    """Each Han character and each pair of neighbours within a run."""
    grams: list[str] = []
    for run in _HAN.findall(unicodedata.normalize("NFKC", text)):
        grams.extend(run)
        grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def _han_filler(gram: str) -> bool:
    """A filler character, or a pair of them: 我的 and 把我 are "my" and "me", as 的 and 我 are."""
    return gram in HAN_FILLER or all(c in HAN_FILLER for c in gram)


def features(text: str, extra_words: tuple[str, ...] = ()) -> dict[str, float]:
    """Weighted features of a text; ``extra_words`` (typo corrections) count like typed words."""
    found: dict[str, float] = defaultdict(float)
    for word in (*words(text), *extra_words):
        weight = FILLER_WEIGHT if strip_marks(word) in FILLER else 1.0
        for stem in word_stems(word):
            found["s:" + stem] += STEM_WEIGHT * weight
        for gram in word_grams(word):
            found["g:" + gram] += GRAM_WEIGHT * weight
    for gram in han_grams(text):
        found["h:" + gram] += HAN_WEIGHT * (FILLER_WEIGHT if _han_filler(gram) else 1.0)
    return found


def meaningful(text: str) -> frozenset[str]:
    """The features of a text's words that carry meaning: its filler words' left out.

    Only these may mark a journey (``bot.understanding.matcher``): which pronoun
    or particle a journey's examples happen to use ("manus datus", "не") says
    nothing about what the customer wants.
    """
    found: set[str] = set()
    for word in words(text):
        if strip_marks(word) in FILLER:
            continue
        found.update("s:" + stem for stem in word_stems(word))
        found.update("g:" + gram for gram in word_grams(word))
    found.update("h:" + gram for gram in han_grams(text) if not _han_filler(gram))
    return frozenset(found)

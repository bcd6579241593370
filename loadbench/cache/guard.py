"""Near-miss guard: a veto on semantic hits whose last messages cannot mean the same thing.

Embeddings (lexical or learned) put "What is 15% of 200?" and "What is 15% of 300?", or
"Which foods are safe for dogs?" and "...not safe for dogs?", close together; static cosine
thresholds cannot separate them (GPTCache #694, #388). So a semantic candidate must also agree
with the request on:

- ``number``: the multiset of numbers (digits and number words, "two" == "2", "first" == "1st");
- ``negation``: the count of negations (not, no, never, without, n't, ...);
- ``entity``: every capitalised mid-sentence word or acronym of one appears in the other;
- ``content``: the set of content words after dropping stop/filler words, light stemming and a
  small synonym table ("repair" == "fix"): an added qualifier or a swapped lowercase thing
  ("sort a list in rust") or a prefixed antonym ("inedible") is a different request;
- ``order``: the directional words (to, from, than, cause, ...) are the same and each is followed
  by the same word, so "Celsius to Fahrenheit" never serves "Fahrenheit to Celsius" and
  "flights to Paris" never serves "flights from Paris".

It deliberately errs towards missing: a false miss costs one model call, a false hit serves a
wrong answer. Features are computed once per stored entry (``analyse``), compared per candidate
(``disagreement``) in a few microseconds.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

_TOKEN_RE = re.compile(
    r"(?P<num>\d+(?:[.,]\d+)*)(?:st|nd|rd|th)?"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    r"|(?P<stop>[.!?;:]+)"
)

NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor",
                       "without", "nowhere", "cannot"})

NUMBER_WORDS: dict[str, str] = {
    w: str(i) for i, w in enumerate((
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
        "twenty",
    ))
} | {
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
    "ninety": "90", "hundred": "100", "thousand": "1000", "million": "1000000",
    "billion": "1000000000", "trillion": "1000000000000", "dozen": "12", "half": "0.5",
    "twice": "2", "once": "1", "first": "1", "second": "2", "third": "3", "fourth": "4",
    "fifth": "5", "sixth": "6", "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10",
}

# Function words and politeness filler that do not change what is asked. Question words,
# directional prepositions and negations are deliberately NOT here.
STOPWORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "if", "so", "of", "at", "in", "on", "for", "with", "as", "is",
    "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing", "done", "have",
    "has", "had", "having", "i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "you", "your",
    "yours", "he", "him", "his", "she", "her", "hers", "it", "its", "they", "them", "their", "theirs",
    "this", "that", "these", "those", "there", "here", "then", "also", "just", "very", "really",
    "quite", "some", "any", "all", "each", "every", "both", "either", "can", "could", "would", "will",
    "shall", "may", "might", "must", "should", "please", "kindly", "thanks", "thank", "tell", "explain",
    "describe", "give", "show", "help", "let", "know", "want", "wish", "like", "need", "get", "got",
    "way", "ways", "exactly", "briefly", "actually", "basically", "simply", "possible", "answer",
    "question", "hi", "hello", "hey", "ok", "okay", "maybe", "perhaps",
    "about", "regarding", "tips", "tip", "idea", "ideas",
})

# A small, general table of words a rewording swaps freely; both sides map to the first word.
_SYNONYM_GROUPS = (
    "fix repair mend", "make create", "start begin commence", "buy purchase", "car automobile",
    "fast quick quickest fastest rapid speedy", "big large", "small little tiny", "remove delete erase",
    "change modify alter", "use utilize utilise", "suggest recommend", "movie film",
    "child children kid kids", "person people", "calculate compute", "summarize summarise",
    "colour color", "centre center", "okay ok fine", "reason why", "meaning mean means",
    "eat eating", "all every",
)
SYNONYMS: dict[str, str] = {w: g.split()[0] for g in _SYNONYM_GROUPS for w in g.split()}

# Words whose argument order matters: compare the word that follows each of them.
DIRECTIONAL = frozenset({"to", "from", "into", "onto", "than", "before", "after", "over",
                         "under", "above", "below", "vs", "versus", "against", "by", "toward",
                         "towards", "cause", "causes", "caused", "defeat", "defeated", "beat",
                         "beats", "conquer", "conquered", "chase", "chases", "of",
                         # the copula relates subject and complement: "is a square a rectangle"
                         "is", "are", "was", "were"})

_WEAK_DIRECTIONAL = frozenset({"to", "of", "by", "is", "are", "was", "were"})

_CLITICS = ("'s", "'re", "'ll", "'ve", "'d", "'m")


@dataclass(slots=True, frozen=True)
class TextFeatures:
    """What the guard compares. Tuples of interned strings keep 100k entries small."""

    numbers: tuple[str, ...]  # sorted multiset
    negations: int
    entities: tuple[str, ...]  # lower-cased, sorted, unique
    words: tuple[str, ...]  # every normalised word (entity lookups), sorted, unique
    content: tuple[str, ...]  # sorted, unique
    anchors: tuple[tuple[str, str], ...]  # (directional word, following word), sorted


def analyse(text: str) -> TextFeatures:
    numbers: list[str] = []
    negations = 0
    entities: set[str] = set()
    words: set[str] = set()
    content: set[str] = set()
    seq: list[str] = []  # significant tokens in order, for anchors
    sentence_start = True
    for m in _TOKEN_RE.finditer(text):
        if m.lastgroup == "stop":
            sentence_start = True
            continue
        if m.lastgroup == "num":
            num = _number(m.group("num"))
            numbers.append(num)
            seq.append("#" + num)
            sentence_start = False
            continue
        raw = m.group("word").replace("’", "'")
        low = raw.lower()
        is_entity = (not sentence_start and raw[0].isupper() and low != "i") or (
            len(raw) >= 2 and raw.isupper())
        sentence_start = False
        if low.endswith("n't"):
            negations += 1
            low = {"ca": "can", "wo": "will", "sha": "shall"}.get(low[:-3], low[:-3])
        for clitic in _CLITICS:
            if low.endswith(clitic):
                low = low[: -len(clitic)]
                break
        if low in NEGATIONS:
            negations += 1
            if low == "cannot":
                low = "can"
            else:
                seq.append(low)
                continue
        if low in NUMBER_WORDS and not is_entity:
            num = NUMBER_WORDS[low]
            numbers.append(num)
            seq.append("#" + num)
            continue
        norm = normal_word(low)
        words.add(norm)
        if is_entity:
            entities.add(norm)
            content.add(norm)
            seq.append(norm)
        elif low in DIRECTIONAL:
            seq.append(low)
        elif low not in STOPWORDS:
            content.add(norm)
            seq.append(norm)
    anchors = set()
    for i, tok in enumerate(seq):
        if tok in DIRECTIONAL:
            nxt = next((t for t in seq[i + 1:] if t not in DIRECTIONAL), "")
            anchors.add((tok, nxt))
    return TextFeatures(
        numbers=tuple(sorted(numbers)),
        negations=negations,
        entities=tuple(sorted(entities)),
        words=tuple(sorted(words)),
        content=tuple(sorted(content)),
        anchors=tuple(sorted(anchors)),
    )


Signature = tuple[tuple[str, ...], int, tuple[str, ...]]


def signature(f: TextFeatures) -> Signature:
    """What ``disagreement`` requires to be equal outright (numbers, negations, content words).

    Texts with different signatures always disagree, so the cache groups stored entries by it and
    compares a request only with its own group. (Entities need no place here: each is also a
    content word, so equal content sets already pass the entity check.)"""
    return (f.numbers, f.negations, f.content)


def disagreement(a: TextFeatures, b: TextFeatures) -> str | None:
    """The first reason ``a`` and ``b`` may mean different things, or None if none is found."""
    if a.numbers != b.numbers:
        return "number"
    if a.negations != b.negations:
        return "negation"
    if any(e not in b.words for e in a.entities) or any(e not in a.words for e in b.entities):
        return "entity"
    if a.content != b.content:
        return "content"
    if a.anchors != b.anchors:
        # A directional word in only one text counts, except the weak ones that are mostly
        # grammar ("how to reset" == "how do I reset").
        a_dirs = {d for d, _ in a.anchors}
        b_dirs = {d for d, _ in b.anchors}
        if (a_dirs ^ b_dirs) - _WEAK_DIRECTIONAL:
            return "order"
        shared = a_dirs & b_dirs
        if {x for x in a.anchors if x[0] in shared} != {x for x in b.anchors if x[0] in shared}:
            return "order"
    return None


def normal_word(low: str) -> str:
    """A lower-case word with its synonym folded and a plural stripped (interned)."""
    norm = _stem(SYNONYMS.get(low, low))
    return sys.intern(SYNONYMS.get(norm, norm))


def _number(raw: str) -> str:
    # "1,000" is a thousands separator; "3.50" == "3.5".
    if re.fullmatch(r"\d{1,3}(,\d{3})+", raw):
        raw = raw.replace(",", "")
    if "." in raw and raw.replace(".", "", 1).isdigit():
        raw = raw.rstrip("0").rstrip(".") or "0"
    return raw.lstrip("0") or "0"


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word

"""Write a TSV of made-up sentence pairs whose words are long and whose forms are rare: data that
needs subword tokens to generalise.

    python benchmarks/morph_pairs.py --out /tmp/morph.tsv --pairs 30000 --seed 0

Why such data. In the built-in toy task every word form is frequent, so word tokens do fine. Real
languages glue meaning onto stems (Turkish "evlerimizden": ev-ler-imiz-den, "from our houses"), so
most of the word forms a translator meets were never seen whole in training, although every piece
of them was. A word vocabulary maps such a form to <unk> and the sentence is lost; characters or
subwords can spell it from pieces seen elsewhere. This script makes a language pair where that is
so by construction, and prints how often it happens on the held-out pairs.

The source language (agglutinative, verb last, subjects dropped when they are pronouns):

    noun    stem + [plural "lar"] + [possessor "im" my | "in" your | "isi" his | "imiz" our | "iniz" your (pl.)]
                 + [case: none = subject | "ni" object | "ga" to | "da" in | "dan" from | "ile" with]
    verb    stem + [mood "abil" can | "mali" must | "sa" if] + [negation "ma"]
                 + tense ("yor" present | "di" past | "ajak" future)
                 + person (me "m" | you "n" | he "" | we "miz" | you (pl.) "niz" | they "lar")
    adjective  an uninflected word before its noun
    compound   one noun in three is two stems glued, modifier first ("door" + "bell")

The target language (subject-verb-object, prepositions, possessors and tenses as suffixes):

    noun phrase   [preposition: "a" to | "in" in | "de" from | "kon" with]
                  noun [+ "os" plural] [+ possessor "mi" "ti" "si" "nos" "vos"] [adjective [+ "i" plural]]
    verb          [negation "ne"] stem + [mood "ka" | "vu" | "ri"] + tense ("" | "ta" | "ru")
                  + person ("o" me | "es" you | "e" he | "amo" we | "ate" you (pl.) | "an" they)
    a dropped subject becomes a pronoun: jo ty on my vy oni

    votadan papukunlarni bamonduajakn             X-from Y-plural-object Z-future-you
    ty lirferues sarkuos de pife                  you Z-future-you Y-plural from X

    pakunribilebilarimdan bilebini vazedim        W+X-plural-my-from X-object Z-past-me (a compound)
    jo wemertao sarlar de nipeyosarlarosmi        me Z-past-me X from W+X-plural-my

Stems (80 nouns, 40 verbs, 20 adjectives, 2-3 syllables each) are made up from syllables and
mapped one-to-one to target stems from another syllable set: a lexicon to learn, as in real
translation. Stems are drawn with Zipf-like frequencies and the suffixes with uneven ones, and
compounds (one noun in three) multiply the stems, so there are many rare (stem, suffixes) forms.
Thus many held-out words were never seen whole in training (a word vocabulary has no token for
them: 37% of the held-out sentences of the default file have one), while every stem and suffix was
(characters and subwords can build them; the stats check it). Sentences are 2-7 source words and
3-9 target words, so a small model learns them in minutes.

The stats at the end are measured on the split that `train.py --data FILE` makes (transformer.data
.split_pairs with --valid-size and --split-seed as train.py's --valid-size and --seed).
Pure Python (random.Random): the same file on every machine for the same --seed.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from transformer.data import split_pairs  # noqa: E402

SOURCE_SYLLABLES = [c + v for c in "ptkbdgmlrsvz" for v in "aeiou"] + [c + v + "n" for c in "kmrt" for v in "aiou"]
TARGET_SYLLABLES = [c + v for c in "fhjknpstwy" for v in "aeiou"] + [c + v + "r" for c in "lmsw" for v in "aeiou"]

NUMBER = {"sg": ("", ""), "pl": ("lar", "os")}                       # source suffix, target suffix
POSSESSOR = {None: ("", None), "1sg": ("im", "mi"), "2sg": ("in", "ti"), "3sg": ("isi", "si"),
             "1pl": ("imiz", "nos"), "2pl": ("iniz", "vos")}          # source suffix, target word
CASE = {"nom": ("", None), "acc": ("ni", None), "dat": ("ga", "a"), "loc": ("da", "in"), "abl": ("dan", "de"),
        "com": ("ile", "kon")}                                        # source suffix, target preposition
TENSE = {"present": ("yor", ""), "past": ("di", "ta"), "future": ("ajak", "ru")}
MOOD = {None: ("", ""), "can": ("abil", "ka"), "must": ("mali", "vu"), "if": ("sa", "ri")}   # before the tense
PERSON = {"1sg": ("m", "o", "jo"), "2sg": ("n", "es", "ty"), "3sg": ("", "e", "on"),
          "1pl": ("miz", "amo", "my"), "2pl": ("niz", "ate", "vy"), "3pl": ("lar", "an", "oni")}
NEGATION = ("ma", "ne")
ADJECTIVE_PLURAL = "i"

# How often each choice is made: uneven, as in real text, which makes most forms rare.
POSSESSOR_WEIGHTS = {None: 4, "1sg": 2, "2sg": 1.5, "3sg": 2, "1pl": 1, "2pl": 0.7}
ADVERBIAL_CASE_WEIGHTS = {"dat": 3, "loc": 3, "abl": 2, "com": 1.5}
TENSE_WEIGHTS = {"present": 4, "past": 3, "future": 2}
MOOD_WEIGHTS = {None: 4, "can": 2, "must": 1.5, "if": 1}
PERSON_WEIGHTS = {"1sg": 3, "2sg": 2, "1pl": 1.5, "2pl": 1}       # of a pronoun subject (dropped in the source)

N_NOUNS, N_VERBS, N_ADJECTIVES = 80, 40, 20
STEM_SYLLABLES = (2, 2, 3)      # drawn from
COMPOUND_RATE = 0.3             # of nouns
ADJECTIVE_RATE = 0.2            # of noun phrases
NOUN_SUBJECT_RATE = 0.4         # of sentences; the others have a pronoun subject
ADVERBIAL_RATE = 0.35           # of sentences


def make_stems(count: int, syllables: list, rng: random.Random, taken: set) -> list:
    """`count` distinct made-up stems of 2-4 syllables, none of them in `taken` (which grows)."""
    stems = []
    while len(stems) < count:
        stem = "".join(rng.choice(syllables) for _ in range(rng.choice(STEM_SYLLABLES)))
        if stem not in taken:
            taken.add(stem)
            stems.append(stem)
    return stems


class Lexicon:
    """The made-up stems of both languages, paired one-to-one, with Zipf-like weights (rank r: 1 / (r + 2))."""

    def __init__(self, rng: random.Random):
        source_taken, target_taken = set(), set()
        self.entries = {}
        for kind, count in (("noun", N_NOUNS), ("verb", N_VERBS), ("adjective", N_ADJECTIVES)):
            sources = make_stems(count, SOURCE_SYLLABLES, rng, source_taken)
            targets = make_stems(count, TARGET_SYLLABLES, rng, target_taken)
            self.entries[kind] = list(zip(sources, targets))
        self.weights = {kind: [1 / (rank + 2) for rank in range(len(pairs))] for kind, pairs in self.entries.items()}

    def draw(self, kind: str, rng: random.Random) -> tuple[str, str]:
        return rng.choices(self.entries[kind], self.weights[kind])[0]


def pick(weights: dict, rng: random.Random):
    return rng.choices(list(weights), list(weights.values()))[0]


def noun_phrase(lexicon: Lexicon, case: str, rng: random.Random) -> tuple[list, list, list]:
    """(source words, target words, morphemes used) of one noun phrase in `case`."""
    source_stem, target_stem = lexicon.draw("noun", rng)
    used = [("noun", source_stem)]
    if rng.random() < COMPOUND_RATE:        # a compound: modifier + head, glued on both sides ("doorbell")
        modifier_source, modifier_target = lexicon.draw("noun", rng)
        source_stem, target_stem = modifier_source + source_stem, modifier_target + target_stem
        used.append(("noun", modifier_source))
    number = "pl" if rng.random() < 0.35 else "sg"
    possessor = pick(POSSESSOR_WEIGHTS, rng)
    source_word = source_stem + NUMBER[number][0] + POSSESSOR[possessor][0] + CASE[case][0]
    target = [CASE[case][1]] if CASE[case][1] else []
    target.append(target_stem + NUMBER[number][1] + (POSSESSOR[possessor][1] or ""))
    source = [source_word]
    used += [("number", number), ("possessor", possessor), ("case", case)]
    if rng.random() < ADJECTIVE_RATE:
        adjective_source, adjective_target = lexicon.draw("adjective", rng)
        source.insert(0, adjective_source)
        target.append(adjective_target + (ADJECTIVE_PLURAL if number == "pl" else ""))
        used.append(("adjective", adjective_source))
    return source, target, used


def sentence_pair(lexicon: Lexicon, rng: random.Random) -> tuple[str, str, list]:
    """(source sentence, target sentence, morphemes used): subject, verb, object and perhaps an adverbial."""
    source, target, used = [], [], []
    if rng.random() < NOUN_SUBJECT_RATE:        # a noun subject: third person, singular or plural
        subject_source, subject_target, subject_used = noun_phrase(lexicon, "nom", rng)
        person = "3pl" if ("number", "pl") in subject_used else "3sg"
        source += subject_source
        target += subject_target
        used += subject_used
    else:                                       # a pronoun: dropped in the source, the verb says who
        person = pick(PERSON_WEIGHTS, rng)
        target.append(PERSON[person][2])
    adverbial = None
    if rng.random() < ADVERBIAL_RATE:
        adverbial = noun_phrase(lexicon, pick(ADVERBIAL_CASE_WEIGHTS, rng), rng)
        source += adverbial[0]
        used += adverbial[2]
    object_phrase = noun_phrase(lexicon, "acc", rng)
    source += object_phrase[0]
    used += object_phrase[2]
    verb_source, verb_target = lexicon.draw("verb", rng)
    mood, tense = pick(MOOD_WEIGHTS, rng), pick(TENSE_WEIGHTS, rng)
    negated = rng.random() < 0.25
    source.append(verb_source + MOOD[mood][0] + (NEGATION[0] if negated else "") + TENSE[tense][0]
                  + PERSON[person][0])
    target += ([NEGATION[1]] if negated else []) + [verb_target + MOOD[mood][1] + TENSE[tense][1] + PERSON[person][1]]
    target += object_phrase[1] + (adverbial[1] if adverbial else [])
    used += [("verb", verb_source), ("mood", mood), ("tense", tense), ("person", person), ("negated", negated)]
    return " ".join(source), " ".join(target), used


def make_pairs(count: int, seed: int) -> tuple[list, dict]:
    """`count` pairs with distinct sources, and the morphemes each source sentence was made of."""
    rng = random.Random(seed)
    lexicon = Lexicon(rng)
    pairs, morphemes = [], {}
    while len(pairs) < count:
        source, target, used = sentence_pair(lexicon, rng)
        if source not in morphemes:
            morphemes[source] = used
            pairs.append((source, target))
    return pairs, morphemes


def stats(pairs: list, morphemes: dict, valid_size: int, split_seed: int) -> dict:
    """What a word vocabulary built on the training pairs misses on the held-out ones, and the word lengths."""
    train, valid = split_pairs(pairs, valid_size, seed=split_seed)
    seen = [Counter(word for pair in train for word in pair[side].split()) for side in (0, 1)]
    unseen = [0, 0]
    words = [0, 0]
    sentences_with_unseen = 0
    for pair in valid:
        any_unseen = False
        for side in (0, 1):
            for word in pair[side].split():
                words[side] += 1
                if word not in seen[side]:
                    unseen[side] += 1
                    any_unseen = True
        sentences_with_unseen += any_unseen
    train_morphemes = {m for source, _ in train for m in morphemes[source]}
    missing = {m for source, _ in valid for m in morphemes[source]} - train_morphemes
    all_words = [[word for pair in pairs for word in pair[side].split()] for side in (0, 1)]
    return dict(
        pairs=len(pairs), train=len(train), held_out=len(valid),
        held_out_source_words_unseen=unseen[0] / words[0], held_out_target_words_unseen=unseen[1] / words[1],
        held_out_sentences_with_an_unseen_word=sentences_with_unseen / len(valid),
        held_out_morphemes_unseen=len(missing),
        source_word_types=len(set(all_words[0])), target_word_types=len(set(all_words[1])),
        avg_source_word_chars=sum(map(len, all_words[0])) / len(all_words[0]),
        avg_target_word_chars=sum(map(len, all_words[1])) / len(all_words[1]),
        avg_source_words=len(all_words[0]) / len(pairs), avg_target_words=len(all_words[1]) / len(pairs),
        max_source_chars=max(len(s) for s, _ in pairs), max_target_chars=max(len(t) for _, t in pairs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="FILE.tsv", help="where to write the pairs")
    parser.add_argument("--pairs", type=int, default=30_000, help="sentence pairs (default: 30000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the lexicon and the sentences (default: 0)")
    parser.add_argument("--valid-size", type=int, default=None,
                        help="held-out pairs for the stats (default: min(1000, 10%%), as train.py)")
    parser.add_argument("--split-seed", type=int, default=0, help="train.py's --seed, for the stats (default: 0)")
    args = parser.parse_args(argv)
    if args.pairs < 20:
        parser.error(f"--pairs must be at least 20, got {args.pairs}")
    pairs, morphemes = make_pairs(args.pairs, args.seed)
    with open(args.out, "w", encoding="utf-8") as file:
        file.writelines(f"{source}\t{target}\n" for source, target in pairs)
    valid_size = min(1000, len(pairs) // 10) if args.valid_size is None else args.valid_size
    numbers = stats(pairs, morphemes, valid_size, args.split_seed)
    print(f"wrote {len(pairs)} pairs to {args.out}")
    for name, value in numbers.items():
        print(f"  {name}: {value:.3f}" if isinstance(value, float) else f"  {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

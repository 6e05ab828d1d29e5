"""Time learning byte-pair-encoding merges (transformer/bpe.py) on 100,000 synthetic sentence pairs.

    python benchmarks/bpe_learn.py                       # 100,000 pairs, 8,000 merges
    python benchmarks/bpe_learn.py --pairs 20000 --merges 2000

The pairs are made up here, from a seeded generator: an English-like source side, and a target
side in an agglutinative made-up language whose words are long chains (stem + stem + plural +
case + possessive + clitic) with accents, so most word forms are rare and a word or character
vocabulary would do badly. Learned three ways: the source side, the target side, and both
together (a joint vocabulary). Reported: seconds and merges/s for each, then the seconds to
encode every sentence, with a check that every one of them decodes back exactly.
"""
import argparse
import itertools
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from transformer.bpe import N_SPECIAL, BPE  # noqa: E402

SOURCE_SYLLABLES = ["ba", "con", "der", "fi", "gal", "hor", "in", "ket", "lo", "mar", "nis", "o",
                    "pre", "quan", "ro", "sen", "tor", "un", "ver", "wil", "ex", "ta", "ble", "ment"]
TARGET_SYLLABLES = ["ka", "lä", "mö", "nu", "pi", "ro", "sé", "tu", "vä", "ha", "jo", "ke", "ly",
                    "ma", "ne", "ou", "pä", "ri", "sa", "ti", "yö", "ze", "kaa", "lii"]


def weighted(weights):
    """(endings, cumulative weights) of a table {ending: weight}, for random.choices."""
    return tuple(weights), list(itertools.accumulate(weights.values()))


# The plain form is the most frequent, and the rarest combinations (plural + case + possessive +
# clitic) are seen only a few times in the whole corpus.
SOURCE_SUFFIXES = weighted({"": 60, "s": 15, "ed": 8, "ing": 7, "er": 4, "ly": 3, "ness": 2, "able": 1})
PLURAL = weighted({"": 60, "t": 25, "i": 15})
CASES = weighted({"": 40, "ssa": 12, "sta": 10, "lle": 9, "lta": 7, "ksi": 6, "na": 5, "tta": 4, "en": 4, "ä": 3})
POSSESSIVES = weighted({"": 85, "ni": 5, "si": 4, "mme": 3, "nne": 2, "nsa": 1})
CLITICS = weighted({"": 90, "kin": 4, "han": 3, "ko": 2, "pa": 1})


def make_lexicon(rnd, syllables, size):
    """`size` distinct stems of 1-4 syllables."""
    stems = set()
    while len(stems) < size:
        stem = "".join(rnd.choice(syllables) for _ in range(rnd.choice((1, 2, 2, 3, 3, 4))))
        stems.add(stem)
    return sorted(stems)


def ending(rnd, table):
    """One ending drawn from a `weighted` table."""
    endings, cumulative = table
    return rnd.choices(endings, cum_weights=cumulative)[0]


def make_pairs(n, seed=0, lexicon_size=3000):
    """n (source, target) sentences: each source word maps to a target stem chain plus endings."""
    rnd = random.Random(seed)
    source_stems = make_lexicon(rnd, SOURCE_SYLLABLES, lexicon_size)
    target_stems = make_lexicon(rnd, TARGET_SYLLABLES, lexicon_size)
    rnd.shuffle(target_stems)
    zipf = list(itertools.accumulate(1 / (rank + 1) for rank in range(lexicon_size)))   # a few words are everywhere
    pairs = []
    for _ in range(n):
        length = rnd.randint(4, 14)
        chosen = rnd.choices(range(lexicon_size), cum_weights=zipf, k=length)
        source, target = [], []
        for i, stem in enumerate(chosen):
            if rnd.random() < 0.05 and i + 1 < length:                 # a compound: two stems in one word
                partner = chosen[i + 1]
                source.append(source_stems[stem] + "-" + source_stems[partner])
                base = target_stems[stem] + target_stems[partner]
            else:
                source.append(source_stems[stem] + ending(rnd, SOURCE_SUFFIXES))
                base = target_stems[stem]
            target.append(base + "".join(ending(rnd, table) for table in (PLURAL, CASES, POSSESSIVES, CLITICS)))
        if rnd.random() < 0.2:
            number = str(rnd.randint(1, 99999))
            source.insert(rnd.randrange(len(source) + 1), number)
            target.insert(rnd.randrange(len(target) + 1), number)
        end = rnd.choice(".?!")
        pairs.append((" ".join(source).capitalize() + end, " ".join(target).capitalize() + end))
    return pairs


def timed_learn(name, sentences, merges):
    """Learn `merges` merges (the vocabulary size they need) and print the time."""
    vocab_size = merges + N_SPECIAL + len(set("".join(sentences)))
    start, cpu = time.perf_counter(), time.process_time()
    bpe = BPE.learn(sentences, vocab_size)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{name:<8} {len(sentences):>7,} sentences  {len(bpe.merges):>6,} merges  {seconds:6.1f} s "
          f"(CPU {cpu:5.1f} s)  {len(bpe.merges) / seconds:8,.0f} merges/s")
    return bpe, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--merges", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    pairs = make_pairs(args.pairs, args.seed)
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    distinct = len({w for s in sources for w in s.split()}), len({w for t in targets for w in t.split()})
    print(f"{len(pairs):,} pairs made in {time.perf_counter() - start:.1f} s; distinct words: source "
          f"{distinct[0]:,}, target {distinct[1]:,}; e.g.\n  {pairs[0][0]}\n  {pairs[0][1]}")

    source_bpe, source_s = timed_learn("source", sources, args.merges)
    target_bpe, target_s = timed_learn("target", targets, args.merges)
    joint_bpe, joint_s = timed_learn("joint", sources + targets, args.merges)
    print(f"per side, both sides: {source_s + target_s:.1f} s")

    start = time.perf_counter()
    pieces = [joint_bpe.tokenize(s) for s in sources + targets]
    seconds = time.perf_counter() - start
    exact = all(joint_bpe.detokenize(p) == s for p, s in zip(pieces, sources + targets))
    n_pieces = sum(map(len, pieces))
    print(f"encode   {len(pieces):>7,} sentences with the joint merges in {seconds:.1f} s: "
          f"{n_pieces / len(pieces):.1f} pieces/sentence; all decode exactly: {exact}")
    if not exact:
        sys.exit(1)


if __name__ == "__main__":
    main()

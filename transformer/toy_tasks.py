"""Built-in sentence-pair tasks, generated from a seed, so nothing has to be downloaded.

    train, valid = make_task("toy", n_train=20_000, n_valid=1_000, seed=0)

"copy" and "reverse" are sanity checks: a working model reaches 100% on them quickly.
"toy" is a small made-up language pair that a model cannot translate word by word
(see the toy section below for its grammar).

Every task keeps its held-out set honest: no validation source sentence appears among the
training sources, so validation accuracy measures generalisation, not memory.
Pure Python (`random.Random`) so the sentences are the same on every machine.
"""
from __future__ import annotations

import random
from typing import Callable, NamedTuple, Optional, Union

TASKS = ("toy", "copy", "reverse")

Pair = tuple[str, str]
PairSampler = Callable[[random.Random], Pair]


def make_task(name: str, n_train: int, n_valid: int, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """(train_pairs, valid_pairs) of space-separated sentences; no valid source sentence appears in train.

    The validation set is drawn first, so it stays the same when only n_train changes:
    runs with different amounts of training data are scored on the same sentences.
    """
    if name not in _SAMPLERS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    if n_train < 0 or n_valid < 0:
        raise ValueError(f"n_train and n_valid must be >= 0, got {n_train} and {n_valid}")
    sample_pair = _SAMPLERS[name]
    rng = random.Random(seed)
    valid = draw_unique_pairs(sample_pair, n_valid, rng)
    train = draw_unique_pairs(sample_pair, n_train, rng, exclude_sources={source for source, _ in valid})
    return train, valid


def draw_unique_pairs(sample_pair: PairSampler, count: int, rng: random.Random,
                      exclude_sources: frozenset[str] | set[str] = frozenset()) -> list[Pair]:
    """Draw `count` pairs with distinct sources, none of them in `exclude_sources`.

    Raises ValueError when the sampler keeps repeating itself: the space of sentences is too
    small for the number requested, and looping forever would hide that.
    """
    seen = set(exclude_sources)
    pairs: list[Pair] = []
    max_draws = 50 * count + 1_000
    for _ in range(max_draws):
        if len(pairs) == count:
            return pairs
        source, target = sample_pair(rng)
        if source not in seen:
            seen.add(source)
            pairs.append((source, target))
    if len(pairs) == count:
        return pairs
    raise ValueError(
        f"found only {len(pairs)} distinct new source sentences in {max_draws} draws, but {count} "
        f"were requested: the task's space of sentences is too small for this many examples")


# ---------------------------------------------------------------------------------------------
# copy / reverse: random strings of letters, e.g. "q b x d" -> "q b x d" (copy) or "d x b q"
# ---------------------------------------------------------------------------------------------

SYMBOLS = tuple("abcdefghijklmnopqrstuvwxyz")
MIN_SYMBOLS, MAX_SYMBOLS = 3, 10


def _random_symbols(rng: random.Random) -> list[str]:
    return [rng.choice(SYMBOLS) for _ in range(rng.randint(MIN_SYMBOLS, MAX_SYMBOLS))]


def sample_copy_pair(rng: random.Random) -> Pair:
    sentence = " ".join(_random_symbols(rng))
    return sentence, sentence


def sample_reverse_pair(rng: random.Random) -> Pair:
    symbols = _random_symbols(rng)
    return " ".join(symbols), " ".join(reversed(symbols))


# ---------------------------------------------------------------------------------------------
# toy: English-like SVO source -> invented SOV target language with gender, case and agreement
# ---------------------------------------------------------------------------------------------
TOY_GRAMMAR = """The toy language pair, and what a model has to learn to translate it.

Source: simple English, subject-verb-object, present tense, lowercase, no punctuation.
Target: an invented language. Its rules:

1. Word order is subject - (indirect object) - (object) - verb: the verb always ends its clause.
   "to" disappears; the indirect object is marked by the dative case instead.
   A "that" clause (after say/think/know/hope) or a "because" clause follows the main clause
   and starts with "ke" (that) or "zar" (because); inside it the verb is again last.
2. Every noun has a gender that must be memorised: masculine, feminine or neuter
   (dog is masculine, cat feminine, book neuter). Plural nouns add -i: kan -> kani.
3. Articles and adjectives agree with their noun. Their ending is a vowel for the gender
   (o = masculine, a = feminine, e = neuter, i = any plural) plus a letter for the case
   (nothing = nominative/subject, n = accusative/object, m = dative/indirect object).
   the -> l + ending, a/an/some -> un + ending, adjective -> stem + ending:
       "the big dog" is "lo grando kan" as a subject, "lon grandon kan" as an object,
       "lom grandom kan" as an indirect object; "the big cats" as an object is "lin grandin misi".
4. "help" and "follow" take their object in the dative, not the accusative.
5. The verb agrees with its subject: -u (I), -is (you), -it (he/she/singular noun),
   -umus (we), -unt (they/plural noun). English only shows "sees" vs "see"; the target needs more.
   ("you" is always taken as singular, so the translation stays a function of the source.)

Worked examples:
    the big dog sees a cat                  -> lo grando kan unan mis vidit
    we give the old book to the girls       -> nos lim feni len veten libr donumus
    she says that the boys help a teacher   -> ela dikit ke li bali unom dokt jutunt

So "the" becomes lo, lon, lom, la, lan, ... depending on a noun that may come one word later and
on the noun's role in the sentence, and verbs move to the end of their clause.
The target is a deterministic function of the source (100% is reachable), the space of sentences
is in the tens of millions, and the number of constructions stays small enough for a small
Transformer to learn.
"""


class Noun(NamedTuple):
    english: str  # singular; every noun here takes a plain English "-s" plural
    stem: str     # target word in the singular
    gender: str   # "m", "f" or "n"


class Adjective(NamedTuple):
    english: str
    stem: str     # target stem; the agreement ending is appended


class Verb(NamedTuple):
    base: str           # English form after I/you/we/they/plural nouns
    third_person: str   # English form after he/she/singular nouns
    stem: str           # target stem; the person ending is appended
    kind: str           # one of the VERB_KINDS below


class Pronoun(NamedTuple):
    english: str
    target: str
    person: str   # key of VERB_ENDINGS


INTRANSITIVE, ACCUSATIVE, DATIVE, DITRANSITIVE, SAYING = (
    "intransitive", "accusative", "dative", "ditransitive", "saying")
VERB_KINDS = (INTRANSITIVE, ACCUSATIVE, DATIVE, DITRANSITIVE, SAYING)

NOUNS = (
    Noun("boy", "bal", "m"), Noun("dog", "kan", "m"), Noun("bird", "pik", "m"),
    Noun("teacher", "dokt", "m"), Noun("king", "reg", "m"), Noun("friend", "amik", "m"),
    Noun("brother", "frat", "m"), Noun("ball", "bol", "m"), Noun("farmer", "agril", "m"),
    Noun("girl", "fen", "f"), Noun("cat", "mis", "f"), Noun("frog", "krot", "f"),
    Noun("doctor", "medik", "f"), Noun("queen", "regin", "f"), Noun("sister", "sor", "f"),
    Noun("flower", "flor", "f"), Noun("tree", "arb", "f"), Noun("key", "klav", "f"),
    Noun("cake", "tort", "f"), Noun("chair", "sed", "f"),
    Noun("horse", "kaval", "n"), Noun("book", "libr", "n"), Noun("apple", "pom", "n"),
    Noun("house", "dom", "n"), Noun("car", "vag", "n"), Noun("letter", "skrib", "n"),
    Noun("song", "kant", "n"), Noun("hat", "kap", "n"), Noun("lamp", "lum", "n"),
    Noun("cup", "tas", "n"),
)

ADJECTIVES = (
    Adjective("big", "grand"), Adjective("small", "min"), Adjective("old", "vet"),
    Adjective("young", "jun"), Adjective("red", "rub"), Adjective("blue", "azur"),
    Adjective("green", "verd"), Adjective("happy", "fel"), Adjective("sad", "trist"),
    Adjective("good", "bon"), Adjective("bad", "mal"), Adjective("tall", "alt"),
    Adjective("lazy", "pigr"), Adjective("clever", "sag"), Adjective("quiet", "kiet"),
)

VERBS = (
    Verb("sleep", "sleeps", "dorm", INTRANSITIVE), Verb("run", "runs", "kur", INTRANSITIVE),
    Verb("laugh", "laughs", "rid", INTRANSITIVE), Verb("sing", "sings", "melod", INTRANSITIVE),
    Verb("swim", "swims", "nat", INTRANSITIVE), Verb("wait", "waits", "atend", INTRANSITIVE),
    Verb("see", "sees", "vid", ACCUSATIVE), Verb("like", "likes", "am", ACCUSATIVE),
    Verb("find", "finds", "trov", ACCUSATIVE), Verb("hear", "hears", "aud", ACCUSATIVE),
    Verb("eat", "eats", "manj", ACCUSATIVE), Verb("call", "calls", "vok", ACCUSATIVE),
    Verb("paint", "paints", "pikt", ACCUSATIVE),
    Verb("help", "helps", "jut", DATIVE), Verb("follow", "follows", "sekv", DATIVE),
    Verb("give", "gives", "don", DITRANSITIVE), Verb("show", "shows", "montr", DITRANSITIVE),
    Verb("send", "sends", "mand", DITRANSITIVE), Verb("bring", "brings", "port", DITRANSITIVE),
    Verb("say", "says", "dik", SAYING), Verb("think", "thinks", "pens", SAYING),
    Verb("know", "knows", "sap", SAYING), Verb("hope", "hopes", "esper", SAYING),
)

PRONOUNS = (
    Pronoun("i", "mi", "1sg"), Pronoun("you", "tu", "2sg"), Pronoun("he", "lu", "3sg"),
    Pronoun("she", "ela", "3sg"), Pronoun("we", "nos", "1pl"), Pronoun("they", "ili", "3pl"),
)

# Ending of articles and adjectives: [gender, or "pl" for any plural][case].
AGREEMENT_ENDINGS = {
    "m": {"nom": "o", "acc": "on", "dat": "om"},
    "f": {"nom": "a", "acc": "an", "dat": "am"},
    "n": {"nom": "e", "acc": "en", "dat": "em"},
    "pl": {"nom": "i", "acc": "in", "dat": "im"},
}
PLURAL_NOUN_SUFFIX = "i"
DEFINITE_ARTICLE, INDEFINITE_ARTICLE = "l", "un"   # + agreement ending
VERB_ENDINGS = {"1sg": "u", "2sg": "is", "3sg": "it", "1pl": "umus", "3pl": "unt"}
THAT, BECAUSE = "ke", "zar"

# How often each construction is drawn; tuned so sentences are mostly 4-15 words long.
MAIN_CLAUSE_WEIGHTS = {INTRANSITIVE: 0.2, ACCUSATIVE: 0.4, DITRANSITIVE: 0.2, SAYING: 0.2}
EMBEDDED_CLAUSE_WEIGHTS = {INTRANSITIVE: 0.35, ACCUSATIVE: 0.65}   # no nesting inside clauses
P_BECAUSE, P_PRONOUN_SUBJECT = 0.25, 0.25
P_PLURAL, P_DEFINITE, P_ADJECTIVE = 0.35, 0.6, 0.35


class NounPhrase(NamedTuple):
    noun: Noun
    plural: bool
    definite: bool
    adjective: Optional[Adjective]


Subject = Union[Pronoun, NounPhrase]


class Clause(NamedTuple):
    subject: Subject
    verb: Verb
    obj: Optional[NounPhrase] = None
    indirect_obj: Optional[NounPhrase] = None
    that_clause: Optional["Clause"] = None      # only after SAYING verbs
    because_clause: Optional["Clause"] = None


def _person(subject: Subject) -> str:
    if isinstance(subject, Pronoun):
        return subject.person
    return "3pl" if subject.plural else "3sg"


# -- drawing a sentence's structure -------------------------------------------------------------

def _sample_noun_phrase(rng: random.Random) -> NounPhrase:
    return NounPhrase(noun=rng.choice(NOUNS), plural=rng.random() < P_PLURAL,
                      definite=rng.random() < P_DEFINITE,
                      adjective=rng.choice(ADJECTIVES) if rng.random() < P_ADJECTIVE else None)


def _sample_clause(rng: random.Random, embedded: bool) -> Clause:
    weights = EMBEDDED_CLAUSE_WEIGHTS if embedded else MAIN_CLAUSE_WEIGHTS
    construction = rng.choices(list(weights), weights=list(weights.values()))[0]
    # ACCUSATIVE stands for every transitive verb, so help/follow (DATIVE) are drawn with the rest.
    kinds = (ACCUSATIVE, DATIVE) if construction == ACCUSATIVE else (construction,)
    verb = rng.choice([v for v in VERBS if v.kind in kinds])
    subject = rng.choice(PRONOUNS) if rng.random() < P_PRONOUN_SUBJECT else _sample_noun_phrase(rng)
    clause = Clause(subject, verb)
    if verb.kind in (ACCUSATIVE, DATIVE, DITRANSITIVE):
        clause = clause._replace(obj=_sample_noun_phrase(rng))
    if verb.kind == DITRANSITIVE:
        clause = clause._replace(indirect_obj=_sample_noun_phrase(rng))
    if verb.kind == SAYING:
        clause = clause._replace(that_clause=_sample_clause(rng, embedded=True))
    elif not embedded and verb.kind != DITRANSITIVE and rng.random() < P_BECAUSE:
        clause = clause._replace(because_clause=_sample_clause(rng, embedded=True))
    return clause


# -- rendering it in each language --------------------------------------------------------------

def _english_noun_phrase(phrase: NounPhrase) -> list[str]:
    words = [phrase.noun.english + ("s" if phrase.plural else "")]
    if phrase.adjective:
        words.insert(0, phrase.adjective.english)
    if phrase.definite:
        article = "the"
    elif phrase.plural:
        article = "some"
    else:
        article = "an" if words[0][0] in "aeiou" else "a"
    return [article] + words


def _english_clause(clause: Clause) -> list[str]:
    subject = clause.subject
    words = [subject.english] if isinstance(subject, Pronoun) else _english_noun_phrase(subject)
    words.append(clause.verb.third_person if _person(subject) == "3sg" else clause.verb.base)
    if clause.obj:
        words += _english_noun_phrase(clause.obj)
    if clause.indirect_obj:
        words += ["to"] + _english_noun_phrase(clause.indirect_obj)
    if clause.that_clause:
        words += ["that"] + _english_clause(clause.that_clause)
    if clause.because_clause:
        words += ["because"] + _english_clause(clause.because_clause)
    return words


def _target_noun_phrase(phrase: NounPhrase, case: str) -> list[str]:
    ending = AGREEMENT_ENDINGS["pl" if phrase.plural else phrase.noun.gender][case]
    words = [(DEFINITE_ARTICLE if phrase.definite else INDEFINITE_ARTICLE) + ending]
    if phrase.adjective:
        words.append(phrase.adjective.stem + ending)
    words.append(phrase.noun.stem + (PLURAL_NOUN_SUFFIX if phrase.plural else ""))
    return words


def _target_clause(clause: Clause) -> list[str]:
    subject = clause.subject
    words = [subject.target] if isinstance(subject, Pronoun) else _target_noun_phrase(subject, "nom")
    if clause.indirect_obj:
        words += _target_noun_phrase(clause.indirect_obj, "dat")
    if clause.obj:
        words += _target_noun_phrase(clause.obj, "dat" if clause.verb.kind == DATIVE else "acc")
    words.append(clause.verb.stem + VERB_ENDINGS[_person(subject)])
    if clause.that_clause:
        words += [THAT] + _target_clause(clause.that_clause)
    if clause.because_clause:
        words += [BECAUSE] + _target_clause(clause.because_clause)
    return words


def render_pair(clause: Clause) -> Pair:
    """(source, target) for one sentence structure: both sides come from the same Clause."""
    return " ".join(_english_clause(clause)), " ".join(_target_clause(clause))


def sample_toy_pair(rng: random.Random) -> Pair:
    return render_pair(_sample_clause(rng, embedded=False))


_SAMPLERS: dict[str, PairSampler] = {
    "toy": sample_toy_pair,
    "copy": sample_copy_pair,
    "reverse": sample_reverse_pair,
}

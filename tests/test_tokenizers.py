"""A run's tokenizers (transformer/tokenizers.py): each side's kind, stored and read back as JSON, joint BPE once."""
import json

import pytest

from transformer.bpe import BPE
from transformer.data import detokenize, tokenize
from transformer.run_settings import TRAIN_DEFAULTS
from transformer.tokenizers import Tokenizers, learn_tokenizers, sides, tokenizers_from_dict, tokenizers_to_dict

PAIRS = [("the station is near", "la gare est proche"), ("the stations are far", "les gares sont loin")] * 3


def settings(**changes):
    return {**TRAIN_DEFAULTS, **changes}


def test_word_and_char_need_no_state():
    assert learn_tokenizers(settings(tokenizer="char"), PAIRS) == Tokenizers("char", "char")
    assert tokenizers_to_dict(Tokenizers("word", "word")) == {"source": "word", "target": "word"}
    assert tokenizers_from_dict({"source": "char", "target": "char"}) == Tokenizers("char", "char")
    assert sides("word") == Tokenizers("word", "word") and sides(Tokenizers("a", "b")) == ("a", "b")


@pytest.mark.parametrize("joint", [False, True])
def test_bpe_tokenizers_go_through_json_and_back(capsys, joint):
    tokenizers = learn_tokenizers(settings(tokenizer="bpe", vocab_size=40, joint_vocab=joint), PAIRS)
    assert "BPE: learned on the 6 training pairs" in capsys.readouterr().out
    assert tokenizers.joint is joint and all(isinstance(side, BPE) for side in tokenizers)
    stored = json.loads(json.dumps(tokenizers_to_dict(tokenizers)))
    assert list(stored) == (["joint"] if joint else ["source", "target"])
    again = tokenizers_from_dict(stored)
    assert again.joint is joint
    for before, after, text in zip(tokenizers, again, ("the stations  are near", "les gares, loin")):
        assert before.merges == after.merges and before.alphabet == after.alphabet
        assert tokenize(text, after) == tokenize(text, before) and detokenize(tokenize(text, after), after) == text


@pytest.mark.parametrize("state, message", [
    ([], "should be a JSON object, not list"),
    ({"source": "word"}, "should have 'source' and 'target'"),
    ({"joint": "word"}, "'joint' should be a BPE's alphabet and merges"),
    ({"joint": {"alphabet": [], "merges": []}, "source": "word"}, "a joint BPE is stored alone"),
    ({"source": "words", "target": "word"}, "the source tokenizer should be 'word', 'char' or a BPE"),
    ({"source": "word", "target": {"alphabet": ["a"], "merges": [["a", ""]]}}, "the target tokenizer: a saved BPE "
                                                                               "needs 'merges'"),
])
def test_malformed_tokenizers_say_what_is_wrong(state, message):
    with pytest.raises(ValueError, match=message):
        tokenizers_from_dict(state)

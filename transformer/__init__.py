"""transformer: the encoder-decoder of "Attention Is All You Need", built from nn and minigrad."""

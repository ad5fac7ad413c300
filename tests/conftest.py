import gzip

import pytest

from w2vjax.train import default_corpus


@pytest.fixture(scope="session")
def head_corpus(tmp_path_factory):
    """``head_corpus(n)``: path of a text file holding the first ``n`` words of the embedded
    text8 sample (real English Wikipedia text), made once per ``n``."""
    made = {}

    def make(n: int) -> str:
        if n not in made:
            words = gzip.open(default_corpus()).read().split()[:n]
            path = tmp_path_factory.mktemp("corpus") / f"head{n}.txt"
            path.write_bytes(b" ".join(words))
            made[n] = str(path)
        return made[n]

    return make

"""Books to count, and the check of a word count against a direct one.

    python books.py make --to s3://lab/books/ --books 12 --words 50000 --seed 1
    python books.py check --books 's3://lab/books/*.txt' --counts s3://lab/counts/reduce/counts.txt

``make`` writes BOOKS text objects ``book-NN.txt`` of about WORDS words each:
sentences drawn from a fixed vocabulary with Zipf-like frequencies, capitals and
punctuation (so the counter has to split and lower-case them).  ``check`` counts
the words of every object matching --books with Python (a word is a run of ASCII
letters, lower-cased, as wordcount.sh has it) and compares the result with the
counts file ("COUNT WORD" lines); it exits 1 and prints the first differences if
they disagree.  URLs are anything fsspec opens (s3://, file://, a local path);
an S3 endpoint other than AWS comes from --endpoint-url or $AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from collections import Counter
from typing import Any

import fsspec

_WORDS = (
    "the of and to a in that is was he for it with as his on be at by i this had not are "
    "but from or have an they which one you were her all she there would their we him been "
    "has when who will more no if out so said what up its about into than them can only "
    "other new some could time these two may then do first any my now such like our over "
    "man me even most made after also did many before must through back years where much "
    "your way well down should because each just those people how too little state good "
    "very make world still own see men work long get here between both life being under "
    "never day same another know while last might us great old year off come since against "
    "go came right used take three whale ship sea captain harpoon ocean voyage storm island"
)
VOCABULARY = _WORDS.split()
WORD = re.compile(r"[A-Za-z]+")


def _options(endpoint: str | None) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def _sentence(rng: random.Random, weights: list[float]) -> list[str]:
    words = rng.choices(VOCABULARY, weights=weights, k=rng.randint(4, 18))
    words[0] = words[0].capitalize()
    if rng.random() < 0.2:
        words[-1] += ","
        words.append(rng.choice(VOCABULARY))
    return words


def book(rng: random.Random, words: int) -> str:
    """About ``words`` words of text, in lines of at most 70 characters."""
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    lines: list[str] = []
    line = ""
    written = 0
    while written < words:
        sentence = _sentence(rng, weights)
        written += len(sentence)
        text = " ".join(sentence) + rng.choice((".", ".", ".", "!", "?", ";"))
        for token in text.split():
            if len(line) + len(token) + 1 > 70:
                lines.append(line)
                line = token
            else:
                line = f"{line} {token}" if line else token
    lines.append(line)
    return "\n".join(lines) + "\n"


def make(to: str, books: int, words: int, seed: int, endpoint: str | None) -> None:
    fs, root = fsspec.core.url_to_fs(to, **_options(endpoint))
    fs.makedirs(root, exist_ok=True)
    rng = random.Random(seed)  # noqa: S311 (made-up text, not secrets)
    for n in range(1, books + 1):
        fs.pipe_file(f"{root.rstrip('/')}/book-{n:02d}.txt", book(rng, words).encode())
    print(f"wrote {books} books of about {words} words to {to}")


def direct_count(pattern: str, endpoint: str | None) -> Counter[str]:
    """Every word of every object matching ``pattern``, counted here."""
    fs, _ = fsspec.core.url_to_fs(pattern, **_options(endpoint))
    counts: Counter[str] = Counter()
    for path in fs.glob(pattern.split("://", 1)[-1]):
        counts.update(w.lower() for w in WORD.findall(fs.cat_file(path).decode()))
    return counts


def read_counts(url: str, endpoint: str | None) -> Counter[str]:
    with fsspec.open(url, "rt", **_options(endpoint)) as f:
        return Counter({word: int(n) for n, word in (line.split() for line in f)})


def check(pattern: str, counts_url: str, endpoint: str | None) -> int:
    expected = direct_count(pattern, endpoint)
    got = read_counts(counts_url, endpoint)
    if got == expected:
        print(
            f"{sum(got.values())} words, {len(got)} distinct: the same as a direct count; "
            f"most frequent: {', '.join(f'{w} {n}' for w, n in got.most_common(5))}"
        )
        return 0
    wrong = sorted(w for w in expected.keys() | got.keys() if expected[w] != got[w])
    for w in wrong[:10]:
        print(f"{w!r}: counted {got[w]}, directly {expected[w]}", file=sys.stderr)
    print(f"{len(wrong)} words differ from the direct count", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="write the books", parents=[common])
    m.add_argument("--to", required=True, help="a folder URL, e.g. s3://lab/books/")
    m.add_argument("--books", type=int, default=12)
    m.add_argument("--words", type=int, default=50000, help="about this many words each")
    m.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("check", help="compare a counts file with a direct count", parents=[common])
    c.add_argument("--books", required=True, help="the objects counted, e.g. 's3://lab/b/*.txt'")
    c.add_argument("--counts", required=True, help="the counts file to check")
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.to, args.books, args.words, args.seed, args.endpoint_url)
        return 0
    return check(args.books, args.counts, args.endpoint_url)


if __name__ == "__main__":
    sys.exit(main())

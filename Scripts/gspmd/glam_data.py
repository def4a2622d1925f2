"""The glam data pipeline in Python: BPE encoding, documents, validation split, packing and the
seeded batch order, so that a JAX run draws exactly the batches `glam train` draws at every step.

Follows the "Training" article of the documentation (sections "Tokenizer" and "From corpus to
batches") and Sources/GLaM/Data. The BPE merges come from the glam checkpoint; nothing is learned
here. Unicode: a chunk's class is letter (Unicode Alphabetic), digit (a numeric type), whitespace
(Unicode White_Space) or other. Python's `unicodedata` has no Alphabetic property, so letters are
the L* and Nl categories plus the Other_Alphabetic symbols; text with combining marks (categories
Mn, Mc, Me), whose Other_Alphabetic status `unicodedata` cannot tell, is refused rather than risk
batches that differ from glam's.
"""
import json
import unicodedata

import numpy as np

# Unicode White_Space (PropList.txt).
WHITE_SPACE = frozenset(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
                                  0x202F, 0x205F, 0x3000]))
# Other_Alphabetic characters of category So (circled and squared Latin letters; PropList.txt).
OTHER_ALPHABETIC_SYMBOLS = [(0x24B6, 0x24E9), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189)]
MASK64 = (1 << 64) - 1


class DataError(Exception):
    """A corpus or tokenizer this pipeline cannot reproduce exactly."""


def _kind(ch, cache={}):  # noqa: B006 (a per-process memo)
    kind = cache.get(ch)
    if kind is None:
        category = unicodedata.category(ch)
        code = ord(ch)
        if category in ("Mn", "Mc", "Me"):
            raise DataError(f"the corpus contains U+{code:04X} (a combining mark, category {category}); whether it is "
                            "Unicode Alphabetic decides glam's tokenization and Python's unicodedata cannot tell")
        if category[0] == "L" or category == "Nl" or any(lo <= code <= hi for lo, hi in OTHER_ALPHABETIC_SYMBOLS):
            kind = "letter"
        elif unicodedata.numeric(ch, None) is not None:
            kind = "digit"
        elif ch in WHITE_SPACE:
            kind = "space"
        else:
            kind = "other"
        cache[ch] = kind
    return kind


def chunks(text):
    """The runs of one character class that merges stay within; a single space joins the run after it."""
    out, i, n = [], 0, len(text)
    while i < n:
        start = i
        current = _kind(text[i])
        if text[i] == " " and i + 1 < n and _kind(text[i + 1]) != "space":
            i += 1
            current = _kind(text[i])
        i += 1
        while i < n and _kind(text[i]) == current:
            i += 1
        out.append(text[start:i].encode("utf-8"))
    return out


class BytePairTokenizer:
    """glam's byte-level BPE (`BytePairTokenizer`): ids 0-255 are bytes, merge k makes id 256 + k, the last id ends a text."""

    def __init__(self, json_text):
        obj = json.loads(json_text)
        if obj.get("format") != "glam-bpe" or obj.get("version") != 1:
            raise DataError("not a glam-bpe tokenizer (expected format \"glam-bpe\", version 1)")
        self.merges = [tuple(pair) for pair in obj["merges"]]
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.vocab_size = 256 + len(self.merges) + 1
        self.end_of_text = 256 + len(self.merges)
        self._cache = {}

    def encode(self, text):
        """The ids of `text`: per chunk, the earliest-learned merge present is applied to all its
        non-overlapping occurrences, left to right, until none applies."""
        out = []
        for chunk in chunks(text):
            ids = self._cache.get(chunk)
            if ids is None:
                ids = list(chunk)
                while len(ids) > 1:
                    best = min(((self.ranks.get((ids[i], ids[i + 1]), None), i) for i in range(len(ids) - 1)
                                if (ids[i], ids[i + 1]) in self.ranks), default=None)
                    if best is None:
                        break
                    rank = best[0]
                    left, right = self.merges[rank]
                    merged, i = [], 0
                    while i < len(ids):
                        if i + 1 < len(ids) and ids[i] == left and ids[i + 1] == right:
                            merged.append(256 + rank)
                            i += 2
                        else:
                            merged.append(ids[i])
                            i += 1
                    ids = merged
                self._cache[chunk] = ids
            out.extend(ids)
        return out

    def decode(self, ids):
        spelled = {}

        def spell(i):
            if i < 256:
                return bytes([i])
            if i not in spelled:
                left, right = self.merges[i - 256]
                spelled[i] = spell(left) + spell(right)
            return spelled[i]

        return b"".join(spell(i) for i in ids if 0 <= i < self.end_of_text).decode("utf-8", errors="replace")


def documents(text):
    """Paragraphs separated by lines that are empty or whitespace only; a paragraph's lines joined with newlines."""
    if "\r" in text:
        raise DataError("the corpus has carriage returns; glam splits lines on a newline that is not part of CR LF, "
                        "convert the file to LF line ends first")
    out, current = [], []
    for line in text.split("\n"):
        if all(ch in WHITE_SPACE for ch in line):
            if current:
                out.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        out.append("\n".join(current))
    return out


def is_validation(index):
    """Every 20th document (index 19, 39, …) is held out."""
    return index % 20 == 19


class PackedRows:
    """Documents (ids ending with end-of-text) packed into rows of `length` (input, target) pairs with segment ids."""

    def __init__(self, docs, length):
        tokens, targets, segments = [], [], []
        column = segment = 0
        for doc in docs:
            if len(doc) < 2:
                continue
            start = 0
            while start < len(doc) - 1:
                if column == length:
                    column = 0
                if column == 0:
                    segment = 0
                segment += 1
                take = min(length - column, len(doc) - 1 - start)
                tokens += doc[start:start + take]
                targets += doc[start + 1:start + take + 1]
                segments += [segment] * take
                column += take
                start += take
        padding = (length - len(tokens) % length) % length
        tokens += [0] * padding
        targets += [0] * padding
        segments += [0] * padding
        self.length = length
        self.tokens = np.asarray(tokens, np.int32).reshape(-1, length)
        self.targets = np.asarray(targets, np.int32).reshape(-1, length)
        self.segments = np.asarray(segments, np.int32).reshape(-1, length)

    @property
    def count(self):
        return self.tokens.shape[0]

    def batch(self, rows):
        """tokens, targets, paddings (float32, 1 at padding), segment ids: each [len(rows), length]."""
        rows = np.asarray(rows)
        segments = self.segments[rows]
        return {"tokens": self.tokens[rows], "targets": self.targets[rows],
                "paddings": (segments == 0).astype(np.float32), "segment_ids": segments}


class TextDataset:
    """A corpus split into training and validation rows for one tokenizer and row length (`TextDataset`)."""

    def __init__(self, text, tokenizer, length):
        training, validation = [], []
        for index, doc in enumerate(documents(text)):
            ids = tokenizer.encode(doc) + [tokenizer.end_of_text]
            (validation if is_validation(index) else training).append(ids)
        self.training = PackedRows(training, length)
        self.validation = PackedRows(validation, length)


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def counter_bits(seed, stream, index):
    """glam's `CounterRandom.bits`: 64 bits as a pure function of (seed, stream, index)."""
    a = _mix((seed + 0x9E3779B97F4A7C15) & MASK64)
    b = _mix(a ^ ((stream * 0xD6E8FEB86659FD93) & MASK64))
    return _mix(b ^ ((index * 0x9E3779B97F4A7C15) & MASK64))


def training_rows(step, batch_size, row_count, seed):
    """Rows of training batch `step` (0-based): a Fisher-Yates permutation per epoch from SplitMix64
    seeded by (seed, epoch), as `TextDataset.rows(step:batchSize:rowCount:seed:)`."""
    if row_count < batch_size or batch_size < 1:
        raise DataError(f"{row_count} rows cannot fill a batch of {batch_size}")
    per_epoch = row_count // batch_size
    epoch, index = divmod(step, per_epoch)
    state = counter_bits(seed, 0xDA7A, epoch)
    permutation = list(range(row_count))
    for i in range(row_count - 1, 0, -1):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        j = _mix(state) % (i + 1)
        permutation[i], permutation[j] = permutation[j], permutation[i]
    return permutation[index * batch_size:(index + 1) * batch_size]


def validation_batches(dataset, batch_size, evaluation_batches):
    """The validation batches glam evaluates: min(B, rows) rows each, in order, at most `evaluation_batches` (0: all)."""
    rows = dataset.validation.count
    size = min(batch_size, rows)
    count = rows // size if size else 0
    if evaluation_batches > 0:
        count = min(count, evaluation_batches)
    return [dataset.validation.batch(range(k * size, (k + 1) * size)) for k in range(count)]

"""An adaptive multi-symbol range coder (pure Python, integer arithmetic only).

The coder is the byte-oriented range coder of LZMA (Pavlov; after Subbotin and
Martin, "Range encoding", 1979) generalised from binary to multi-symbol
alphabets: a 32-bit `range`, a 33-bit `low` whose carry is propagated through a
one-byte cache, and renormalisation whenever `range` drops below 2**24.

Probabilities come from adaptive frequency tables, one per *context* (for
codes: one per code dimension), so no model is stored in the file: encoder and
decoder start from the same flat table and update it identically after every
symbol. Tables are Fenwick trees, so a cumulative-frequency lookup, an update
and the decoder's symbol search all cost `O(log alphabet)`.

Everything is integers, so a file decodes bit-exactly on any platform.

Example:
    >>> from kerasae.uses import rangecoder
    >>> data = rangecoder.encode([[3, 3, 3, 0]], alphabet=4)
    >>> rangecoder.decode(data, count=1, contexts=4, alphabet=4)
    [[3, 3, 3, 0]]
"""

from kerasae._util.errors import InvalidValue

TOP = 1 << 24
MASK32 = 0xFFFFFFFF
INCREMENT = 24
LIMIT = 1 << 16  # max table total: keeps range // total >= 2**8


class AdaptiveModel:
    """Adaptive frequencies of one context, stored as a Fenwick tree.

    Every symbol starts at frequency 1; a coded symbol gains `increment`; when
    the total would exceed `limit` all frequencies are halved (rounding up, so
    none reaches 0). This is what both sides do, so they stay in step.
    """

    __slots__ = ("n", "tree", "freq", "total", "increment", "limit", "top_bit")

    def __init__(self, alphabet, increment=INCREMENT, limit=LIMIT):
        if not 2 <= alphabet <= limit // 2:
            raise InvalidValue(
                f"alphabet must be in [2, {limit // 2}] for a table limit of {limit}. "
                f"Received: alphabet={alphabet}"
            )
        self.n = alphabet
        self.increment = increment
        self.limit = limit
        self.top_bit = 1 << (alphabet.bit_length() - 1)
        self._reset([1] * alphabet)

    def _reset(self, freq):
        n = self.n
        self.freq = freq
        tree = [0] * (n + 1)
        for i, f in enumerate(freq, 1):
            tree[i] += f
            j = i + (i & -i)
            if j <= n:
                tree[j] += tree[i]
        self.tree = tree
        self.total = sum(freq)

    def cumulative(self, symbol):
        """Sum of the frequencies of the symbols below `symbol`."""
        tree, i, s = self.tree, symbol, 0
        while i > 0:
            s += tree[i]
            i &= i - 1
        return s

    def find(self, target):
        """Returns `(symbol, cumulative)` with cumulative <= target < cumulative + freq."""
        tree, n = self.tree, self.n
        pos, step, rest = 0, self.top_bit, target
        while step:
            nxt = pos + step
            if nxt <= n and tree[nxt] <= rest:
                pos = nxt
                rest -= tree[nxt]
            step >>= 1
        return pos, target - rest

    def update(self, symbol):
        inc = self.increment
        if self.total + inc > self.limit:
            self._reset([(f + 1) >> 1 for f in self.freq])
        self.freq[symbol] += inc
        self.total += inc
        tree, n, i = self.tree, self.n, symbol + 1
        while i <= n:
            tree[i] += inc
            i += i & -i


class Encoder:
    """Range encoder writing to a `bytearray`."""

    def __init__(self):
        self.low = 0
        self.range = MASK32
        self.cache = 0
        self.cache_size = 1
        self.out = bytearray()

    def _shift_low(self):
        low = self.low
        if low < 0xFF000000 or low > MASK32:
            carry = low >> 32
            temp = self.cache
            out = self.out
            while True:
                out.append((temp + carry) & 0xFF)
                temp = 0xFF
                self.cache_size -= 1
                if not self.cache_size:
                    break
            self.cache = (low >> 24) & 0xFF
        self.cache_size += 1
        self.low = (low << 8) & MASK32

    def encode(self, cum, freq, total):
        r = self.range // total
        self.low += r * cum
        self.range = r * freq
        while self.range < TOP:
            self.range <<= 8
            self._shift_low()

    def finish(self):
        for _ in range(5):
            self._shift_low()
        return bytes(self.out)


class Decoder:
    """Range decoder over `bytes`; reading past the end yields zero bytes."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.range = MASK32
        self.code = 0
        for _ in range(5):
            self.code = ((self.code << 8) | self._byte()) & MASK32
        self.r = 1

    def _byte(self):
        pos = self.pos
        self.pos = pos + 1
        return self.data[pos] if pos < len(self.data) else 0

    def target(self, total):
        self.r = self.range // total
        return min(self.code // self.r, total - 1)

    def consume(self, cum, freq):
        r = self.r
        self.code -= r * cum
        self.range = r * freq
        while self.range < TOP:
            self.code = ((self.code << 8) | self._byte()) & MASK32
            self.range <<= 8


def encode(rows, alphabet, increment=INCREMENT, limit=LIMIT):
    """Encodes rows of symbols; position `j` of every row shares context `j`.

    Args:
        rows: sequence of equal-length sequences of ints in `[0, alphabet)`.
        alphabet: number of distinct symbols.
        increment: adaptation step. Defaults to `24`.
        limit: table total that triggers halving. Defaults to `2**16`.

    Returns:
        The coded `bytes`.
    """
    rows = [list(map(int, r)) for r in rows]
    width = len(rows[0]) if rows else 0
    models = [AdaptiveModel(alphabet, increment, limit) for _ in range(width)]
    enc = Encoder()
    for row in rows:
        if len(row) != width:
            raise InvalidValue(
                f"All rows must have the same length. Received: lengths {width} and {len(row)}"
            )
        for model, s in zip(models, row):
            if not 0 <= s < alphabet:
                raise InvalidValue(
                    f"Symbols must lie in [0, {alphabet}). Received: symbol={s}"
                )
            enc.encode(model.cumulative(s), model.freq[s], model.total)
            model.update(s)
    return enc.finish()


class Exhausted(ValueError):
    """The coded bytes ran out before every symbol asked for was decoded."""


def decode(data, count, contexts, alphabet, increment=INCREMENT, limit=LIMIT):
    """Decodes `count` rows of `contexts` symbols written by `encode`.

    `encode` flushes what its last symbol needs, so decoding never reads past the
    end of what it wrote; a stream that runs out first is refused (`Exhausted`),
    which bounds the work on damaged or crafted input by its length.
    """
    models = [AdaptiveModel(alphabet, increment, limit) for _ in range(contexts)]
    data = bytes(data)
    dec = Decoder(data)
    rows = []
    for n in range(count):
        if dec.pos > len(data):
            raise Exhausted(f"the coded bytes end after {n} of {count} rows")
        row = []
        for model in models:
            target = dec.target(model.total)
            s, cum = model.find(target)
            dec.consume(cum, model.freq[s])
            model.update(s)
            row.append(s)
        rows.append(row)
    return rows

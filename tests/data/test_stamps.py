"""A series' timestamps as UTF-8 bytes: read like the list of strings they replace, at a
quarter of its memory."""

import sys

import numpy as np

from kerasae import data
from kerasae.data.stamps import Stamps


def test_stamps_read_like_a_list_of_strings():
    texts = ["2014-07-01 00:00:00", "2014-07-01 00:30:00", "Mo 07:00 Zürich", ""]
    s = Stamps(texts)
    assert len(s) == 4 and list(s) == texts and s == texts
    assert s[2] == "Mo 07:00 Zürich" and s[-1] == "" and isinstance(s[0], str)
    assert list(s[1:3]) == texts[1:3] and isinstance(s[1:3], Stamps)
    assert {t: i for i, t in enumerate(s)}["2014-07-01 00:30:00"] == 1
    joined = Stamps.join([Stamps(texts[:1]), Stamps(["x"]), Stamps()])
    assert list(joined) == [texts[0], "x"]
    assert list(Stamps.join([])) == []


def test_a_csv_series_keeps_its_stamps_in_a_quarter_of_a_lists_memory(tmp_path):
    n = 20_000
    start = np.datetime64("2014-07-01T00:00:00")
    texts = [str(start + np.timedelta64(300 * i, "s")).replace("T", " ") for i in range(n)]
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n" + "".join(f"{t},{i % 7}\n" for i, t in enumerate(texts)))
    src = data.series(str(path), window=8)
    assert isinstance(src.timestamps, Stamps) and list(src.timestamps) == texts
    assert list(src.part(100, 200, "p").timestamps) == texts[100:200]
    as_list = sys.getsizeof(texts) + sum(sys.getsizeof(t) for t in texts)
    assert src.timestamps.nbytes == 19 * n  # the 19 characters each, nothing more
    assert src.timestamps.nbytes * 4 < as_list

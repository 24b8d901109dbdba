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


def test_a_series_out_of_time_order_is_refused_a_clock_glitch_noted(tmp_path):
    import pytest

    from kerasae.data.source import DataError

    start = np.datetime64("2024-01-01T00:00:00")
    times = [str(start + np.timedelta64(60 * i, "s")).replace("T", " ") for i in range(300)]
    shuffled = np.random.default_rng(0).permutation(times)
    path = tmp_path / "shuffled.csv"
    path.write_text("timestamp,value\n" + "".join(f"{t},{i}\n" for i, t in enumerate(shuffled)))
    first = next(i for i in range(1, 300) if shuffled[i] < shuffled[i - 1])
    with pytest.raises(DataError, match=rf"goes back in time at \d+ of 300 steps, first at "
                                        rf"step {first} \('{shuffled[first]}'"):
        data.series(str(path), window=2)
    # One clock jump back (as NAB's machine_temperature file has): read, in file order, said.
    glitch = times[:100] + times[40:60] + times[100:]
    path.write_text("timestamp,value\n" + "".join(f"{t},{i}\n" for i, t in enumerate(glitch)))
    src = data.series(str(path), window=2)
    assert list(src.timestamps) == glitch
    assert src.info()["time_goes_back"] == {"steps": 1, "first_at_step": 100}
    # Not ISO date-times: not checked (their order is the file's).
    other = tmp_path / "names.csv"
    other.write_text("time,value\nmonday,1\ntuesday,2\nfriday,3\n")
    assert len(data.series(str(other), window=2)) == 2


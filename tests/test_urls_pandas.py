"""The Series accessor and the dask entry point for URL parsing."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pandas as pd
import pytest

from opennote_jupyter.url_frame import register_accessor
from opennote_jupyter.urls import build_video_key, parse_video_urls

HOST = "https://videofs-opennote-us-east-1.s3.us-east-1.amazonaws.com/"
URLS = [
    HOST
    + build_video_key(
        datetime(2025, 7, 26, day % 24),
        f"{day:08x}-0462-4273-a89d-8bc9bdde926b",
        f"Day {day}",
    )
    for day in range(30)
] + [None, "https://example.com/x.mp4"]


@pytest.fixture
def accessor():
    """Register Series.opennote for one test and remove it again afterwards."""
    was_registered = "opennote" in pd.Series._accessors
    register_accessor()
    yield
    if not was_registered:
        del pd.Series.opennote
        pd.Series._accessors.discard("opennote")


def test_accessor_parses_series(accessor):
    series = pd.Series(URLS, index=range(100, 100 + len(URLS)))
    frame = series.opennote.parse()
    pd.testing.assert_frame_equal(frame, parse_video_urls(series))
    assert list(frame.index) == list(series.index)
    assert frame["title"].iloc[3] == "Day 3"


def test_accessor_raise_mode(accessor):
    with pytest.raises(
        ValueError, match=r"at position 30 \(index label 30\): missing value"
    ):
        pd.Series(URLS).opennote.parse(errors="raise")


def test_accessor_rejects_numbers(accessor):
    with pytest.raises(AttributeError, match="needs a Series of URL strings"):
        pd.Series([1, 2]).opennote  # noqa: B018


def test_accessor_unregistered_then_registered():
    registered = "opennote" in pd.Series._accessors
    if registered:
        accessor_class = pd.Series.opennote
        del pd.Series.opennote
        pd.Series._accessors.discard("opennote")
    try:
        assert not hasattr(pd.Series([HOST]), "opennote")
        register_accessor()
        assert hasattr(pd.Series([HOST]), "opennote")
    finally:
        if not registered:
            del pd.Series.opennote
            pd.Series._accessors.discard("opennote")
        else:
            pd.Series.opennote = accessor_class


def test_import_registers_only_on_first_use():
    code = (
        "import sys, opennote_jupyter as o, pandas as pd\n"
        "assert 'opennote_jupyter.url_frame' not in sys.modules\n"
        "assert not hasattr(pd.Series(['x']), 'opennote')\n"
        "o.parse_video_urls([])\n"
        "assert pd.Series(['x']).opennote\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_urls_module_does_not_import_pandas():
    code = (
        "import sys, opennote_jupyter.urls as u\n"
        "u.parse_video_url('http://127.0.0.1:1/files/20250922113116-'"
        "'ce36a32a-d8e8-4102-8f58-ba05311b8553.png')\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_dask_partitions_match_pandas():
    dd = pytest.importorskip("dask.dataframe")
    from opennote_jupyter.urls import parse_video_urls_dask

    series = pd.Series(URLS, dtype="string[pyarrow]", name="url")
    lazy = parse_video_urls_dask(dd.from_pandas(series, npartitions=3))
    assert list(lazy.columns) == list(parse_video_urls(series).columns)
    frame = lazy.compute(scheduler="synchronous")
    pd.testing.assert_frame_equal(frame, parse_video_urls(series))


def test_dask_raise_mode_on_compute():
    dd = pytest.importorskip("dask.dataframe")
    from opennote_jupyter.urls import parse_video_urls_dask

    series = pd.Series(URLS, dtype="string[pyarrow]")
    lazy = parse_video_urls_dask(dd.from_pandas(series, npartitions=3), errors="raise")
    with pytest.raises(ValueError, match="missing value"):
        lazy.compute(scheduler="synchronous")

"""`core.metrics`: metrics exist only once described, and a package's metrics can be listed."""

from __future__ import annotations

import math

import pytest

import ingest
from core.metrics import Metrics, collect_help, parse_text, scraped_quantile
from ingest import pipeline, writer


def test_a_metric_must_be_described_before_use() -> None:
    m = Metrics()
    with pytest.raises(KeyError, match="not described"):
        m.counter("pantau_nobody_total")
    m.describe({"pantau_nobody_total": ("counter", "Nothing.")})
    m.counter("pantau_nobody_total").inc(2)
    assert m.render() == ("# HELP pantau_nobody_total Nothing.\n"
                          "# TYPE pantau_nobody_total counter\n"
                          "pantau_nobody_total 2\n")


def test_describing_twice_is_fine_but_not_differently() -> None:
    m = Metrics()
    m.describe({"pantau_x_total": ("counter", "X.")})
    m.describe({"pantau_x_total": ("counter", "X.")})
    with pytest.raises(ValueError, match="differently"):
        m.describe({"pantau_x_total": ("gauge", "X.")})
    with pytest.raises(ValueError, match="unknown kind"):
        m.describe({"pantau_y": ("summary", "Y.")})


def test_collect_help_finds_every_module_of_a_package() -> None:
    found = collect_help(ingest)
    assert pipeline.HELP.items() <= found.items()
    assert writer.HELP.items() <= found.items()


def test_parse_text_reads_back_what_render_wrote() -> None:
    m = Metrics()
    m.describe({"pantau_x_total": ("counter", "x"), "pantau_y": ("gauge", "y")})
    m.counter("pantau_x_total", reason="a b").inc(3)
    m.gauge("pantau_y").set(0.25)
    assert parse_text(m.render()) == {'pantau_x_total{reason="a b"}': 3.0, "pantau_y": 0.25}


def test_a_quantile_read_back_from_the_text_is_the_histograms() -> None:
    m = Metrics()
    m.describe({"pantau_x_seconds": ("histogram", "X.")})
    h = m.histogram("pantau_x_seconds")
    for v in (0.002, 0.03, 0.03, 0.2, 0.7):
        h.observe(v)
    before = parse_text(m.render())
    for v in (1.5, 1.6, 3.0):
        h.observe(v)
    after = parse_text(m.render())
    assert scraped_quantile(after, "pantau_x_seconds", 0.5) == h.quantile(0.5)
    assert scraped_quantile(after, "pantau_x_seconds", 0.99) == h.quantile(0.99)
    # between two scrapes: only the three later values, all in the 1-2.5 s and 2.5-5 s buckets
    assert 1.0 < scraped_quantile(after, "pantau_x_seconds", 0.5, before) <= 2.5
    assert 2.5 < scraped_quantile(after, "pantau_x_seconds", 0.99, before) <= 5.0
    assert math.isnan(scraped_quantile(after, "pantau_y_seconds", 0.5))

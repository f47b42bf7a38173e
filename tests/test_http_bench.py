"""The HTTP part of `edge-classifier bench`: every figure is reported (none is asserted: timings vary by machine)."""

import pytest

from edge_classifier.bench.http_bench import http_bench
from edge_classifier.config.settings import load_config
from helpers import SAMPLE_VIDEO

pytestmark = pytest.mark.slow


def test_http_bench_reports_round_trip_mjpeg_cost_and_rss():
    report = http_bench(load_config(), SAMPLE_VIDEO, iterations=10)
    predict, mjpeg, rss = report["predict"], report["mjpeg"], report["rss"]
    assert (10, True, True, True, True, True) == (
        predict["iterations"],
        predict["http_round_trip_ms"]["p50"] > 0 and predict["bare_decode_and_classify_ms"]["p50"] > 0,
        "overhead_ms_p50" in predict and "http_only_ms" in predict,
        mjpeg["render_encode_ms"]["p50"] > 0 and mjpeg["jpeg_bytes_mean"] > 0,
        rss["rss_before_mb"] > 0,
        "added_after_200_json_requests_mb" in rss,
    ), report

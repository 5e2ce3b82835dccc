"""The benchmark harness's pure parts: reading wrk's report and combining rounds (no server, no wrk)."""
from __future__ import annotations

import pytest

from bench.harness import WrkResult, _ms, combine, parse_wrk

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:40000
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    59.15ms   21.40ms 180.03ms   71.51%
    Req/Sec   270.43     48.95   373.00     70.00%
  Latency Distribution
     50%   53.90ms
     75%   68.41ms
     90%   89.12ms
     99%    1.86s
  1622 requests in 3.02s, 402.71KB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:    537.42
Transfer/sec:    133.35KB
BENCH created 1615
BENCH conflicts 7
"""


def test_parse_wrk_reads_rate_percentiles_errors_and_script_counters():
    result = parse_wrk("api_book", WRK_OUTPUT)
    assert result.requests_per_s == pytest.approx(537.42)
    assert result.p50_ms == pytest.approx(53.9)
    assert result.p99_ms == pytest.approx(1860.0)
    assert (result.requests, result.non_2xx, result.errors) == (1622, 7, 5)
    assert result.extra == {"created": 1615, "conflicts": 7, "seconds": pytest.approx(3.02)}


@pytest.mark.parametrize(("text", "ms"), [("850.00us", 0.85), ("12.5ms", 12.5), ("1.20s", 1200.0), ("1.00m", 60000.0)])
def test_wrk_durations(text, ms):
    assert _ms(text) == pytest.approx(ms)


def test_parse_wrk_without_errors_or_counters():
    plain = "\n".join(line for line in WRK_OUTPUT.splitlines() if not line.startswith(("  Socket", "  Non-2xx", "BENCH")))
    result = parse_wrk("floor", plain)
    assert (result.non_2xx, result.errors) == (0, 0)
    assert result.extra == {"seconds": pytest.approx(3.02)}


def test_combine_weighs_rounds_by_time_and_takes_the_median_p99():
    a = WrkResult("x", 100.0, 10.0, 50.0, 300, 0, 0, {"seconds": 3.0, "created": 300})
    b = WrkResult("x", 300.0, 20.0, 400.0, 600, 1, 2, {"seconds": 2.0, "created": 599})
    c = WrkResult("x", 100.0, 30.0, 70.0, 100, 0, 0, {"seconds": 1.0, "created": 100})
    all_three = combine("x", [a, b, c])
    assert all_three.requests_per_s == pytest.approx(1000 / 6.0)
    assert (all_three.p50_ms, all_three.p99_ms) == (20.0, 70.0)
    assert (all_three.requests, all_three.non_2xx, all_three.errors) == (1000, 1, 2)
    assert all_three.extra["created"] == 999 and all_three.extra["rounds"] == [100.0, 300.0, 100.0]
    assert all_three.extra["p99_rounds"] == [50.0, 400.0, 70.0]

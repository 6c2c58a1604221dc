"""`palaver bench` against a real server, and the real-time metrics it moves."""

from __future__ import annotations

import argparse
import asyncio
import re

import httpx
import pytest

from palaver import bench
from palaver.cli import main
from tests.realtime.conftest import Server


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{name} missing from /metrics"
    return float(found.group(1))


async def test_bench_reports_deliveries_loss_and_latency(server: Server) -> None:
    args = argparse.Namespace(
        url=server.base,
        rooms=2,
        members=3,
        senders=1,
        rate=20.0,
        duration=1.0,
        drain=1.0,
        json=True,
        quiet=True,
    )
    result = await bench.run(args)
    assert result["sent"] >= 10
    assert result["expected_deliveries"] == result["sent"] * 3
    assert result["deliveries"] == result["expected_deliveries"]
    assert result["loss"] == 0
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    async with httpx.AsyncClient(base_url=server.base) as http:
        text = (await http.get("/metrics")).text
    assert metric(text, "deliveries_total") >= result["deliveries"]
    assert metric(text, "ws_frames_in_total") >= result["sent"]
    assert metric(text, "ws_frames_out_total") >= result["deliveries"]
    assert metric(text, "fanout_latency_seconds_count") > 0
    # Every bench socket closed, and the gauge follows (the close is processed soon after).
    async with asyncio.timeout(5), httpx.AsyncClient(base_url=server.base) as http:
        while metric((await http.get("/metrics")).text, "ws_connections") != 0:
            await asyncio.sleep(0.05)


def test_bench_command_line_documents_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--rooms", "--members", "--senders", "--rate", "--duration", "--json"):
        assert option in usage

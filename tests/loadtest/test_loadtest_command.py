"""``shipyard loadtest`` end to end through click's CliRunner, against a tiny real server
on 127.0.0.1: the table, --out's files and summary keys, --slo's exit status, the bodies
file, SERVICE/ENDPOINT targets with their key, --processes, and the usage errors."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from loadtest.http_servers import Behaviour, tiny_server
from shipyard.cli.main import main
from support.waiting import wait_for

LATENCY_KEYS = {"p50", "p90", "p99", "p999", "max"}


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["loadtest", *args])
    return result.exit_code, result.output


def test_an_open_run_writes_the_summary_csv_and_report(tmp_path: Path) -> None:
    with tiny_server() as server:
        code, output = _invoke(
            server.url + "/ranker/home",
            "--json",
            '{"profile_id": "p1"}',
            "--rate",
            "200",
            "--duration",
            "2s",
            "--out",
            str(tmp_path / "out"),
        )
        answered = server.answered
        bodies = dict(server.bodies)
    assert code == 0, output
    assert bodies == {b'{"profile_id":"p1"}': 400}
    assert "achieved of 200 target" in output and "uncorrected" in output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["requests"] == answered == 400 and summary["errors"] == 0
    assert 190 <= summary["rps"] <= 210
    assert LATENCY_KEYS <= set(summary["latency_ms"])
    assert LATENCY_KEYS <= set(summary["latency_uncorrected_ms"])
    assert summary["model"] == "open" and summary["target_rps"] == 200
    with open(tmp_path / "out" / "seconds.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["second"] for r in rows][:2] == ["0", "1"]
    assert {"rps", "p50_ms", "p99_ms", "errors"} <= set(rows[0])
    assert sum(int(r["requests"]) for r in rows) == 400
    page = (tmp_path / "out" / "report.html").read_text()
    assert (
        page.count("<svg") == 3
        and "<script" not in page
        and "http://" not in page.replace("http://www.w3.org/2000/svg", "").replace(server.url, "")
    )


def test_a_missed_slo_exits_1_naming_what_was_missed(tmp_path: Path) -> None:
    with tiny_server(Behaviour(statuses={"/flaky": 500})) as server:
        code, output = _invoke(
            server.url + "/flaky",
            "--concurrency",
            "2",
            "--max-requests",
            "50",
            "--slo",
            "p99<10s,errors<0.1%",
            "--out",
            str(tmp_path),
        )
    assert code == 1, output
    assert "SLO MISSED: errors<0.1%: errors = 100%" in output
    assert "p99<10s: p99 = " in output and "met" in output
    assert "by status: 500: 50" in output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["slo"]["met"] is False
    assert [c["met"] for c in summary["slo"]["checks"]] == [True, False]


def test_a_met_slo_exits_0() -> None:
    with tiny_server() as server:
        code, output = _invoke(
            server.url + "/x",
            "--concurrency",
            "2",
            "--max-requests",
            "50",
            "--slo",
            "p99<10s,errors<1%,rps>1",
        )
    assert code == 0, output
    assert "SLO MISSED" not in output


def test_a_bodies_file_mixes_endpoints_by_weight(tmp_path: Path) -> None:
    bodies = tmp_path / "traffic.jsonl"
    bodies.write_text(
        '{"profile_id": "p1"}\n'
        "\n"
        '{"endpoint": "score", "weight": 3, "body": {"pairs": []}}\n'
        '{"endpoint": "other/ping", "body": null}\n'
    )
    with tiny_server() as server:
        code, output = _invoke(
            server.url + "/ranker/home",
            "--bodies",
            str(bodies),
            "--concurrency",
            "3",
            "--max-requests",
            "500",
        )
        by_path = dict(server.by_path)
    assert code == 0, output
    assert by_path == {"/ranker/home": 100, "/ranker/score": 300, "/other/ping": 100}


def test_a_service_endpoint_target_goes_to_the_configured_host_with_the_key(
    shipyard_home: Path,
) -> None:
    with tiny_server() as server:
        code, output = _invoke(
            "ranker/home",
            "--url",
            server.url,
            "--key",
            "sy_test_key",
            "--json",
            "{}",
            "--concurrency",
            "1",
            "--max-requests",
            "20",
            "--no-record",
        )
        by_path, keys = dict(server.by_path), dict(server.authorizations)
    assert code == 0, output
    assert by_path == {"/ranker/home": 20}
    assert keys == {"Bearer sy_test_key": 20}
    assert output.startswith("load-testing ranker/home") or "ranker/home: closed model" in output


def test_processes_split_the_load_and_merge_exactly() -> None:
    with tiny_server() as server:
        code, output = _invoke(
            server.url + "/x",
            "--concurrency",
            "4",
            "--processes",
            "2",
            "--max-requests",
            "600",
            "--duration",
            "20s",
        )
        answered = server.answered
    assert code == 0, output
    assert answered == 600
    assert "requests     600 in" in output and "2 process(es)" in output


def test_usage_errors_exit_2_and_say_what_to_do(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"endpoint": "x", "weight": 0, "body": {}}\n')
    cases = [
        (["http://127.0.0.1:9/x"], "give one load model"),
        (["http://127.0.0.1:9/x", "--rate", "1", "--concurrency", "1"], "give one load model"),
        (["ranker", "--rate", "1"], "neither SERVICE/ENDPOINT"),
        (["http://127.0.0.1:9/x", "--rate", "1", "--slo", "p99<50"], "needs a unit"),
        (["http://127.0.0.1:9/x", "--rate", "1", "--json", "{nope"], "--json is not valid JSON"),
        (["http://127.0.0.1:9/x", "--rate", "1", "--bodies", str(bad)], f"{bad}:2: weight"),
        (["http://127.0.0.1:9/x", "--rate", "1", "--method", "HEAD"], "HEAD is not supported"),
        (["http://127.0.0.1:9/x", "--concurrency", "1", "--processes", "2"], None),
    ]
    for args, message in cases:
        code, output = _invoke(*args)
        if message is None:  # a runtime refusal, before any request
            assert code == 1 and "less than --processes" in output, output
            continue
        assert code == 2, (args, output)
        assert message in output, (args, output)


def test_ctrl_c_stops_sending_and_still_reports_what_was_measured() -> None:
    with tiny_server() as server:
        for processes in ("1", "2"):
            before = server.answered
            proc = subprocess.Popen(
                [sys.executable, "-m", "shipyard", "loadtest", server.url + "/x",
                 "--rate", "100", "--duration", "60s", "--processes", processes],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                wait_for(lambda b=before: server.answered > b + 50, "answers", timeout=30)
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
            assert proc.returncode == 0, err
            assert "(stopped early: interrupted)" in out, out + err
            match = re.search(r"requests +(\d[\d,]*) in", out)
            assert match and int(match.group(1).replace(",", "")) > 0, out

"""``costs`` and ``estimate`` through a real argparse parser, on a SQLite ledger in tmp_path."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from erp_agents.costs.commands import parse_since, register
from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_types import Account, CallKey, ChargeDetail
from erp_agents.spec.discovery import ENGINE_CONFIG_ENV


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m erp_agents")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def _fill(url: str) -> None:
    today = datetime.now(UTC).date().isoformat()
    ledger = Ledger(url)

    async def go() -> None:
        day = Account(f"day:{today}", 10_000_000, "day")
        module = Account(f"module:Finance:{today}", 2_000_000, "module")
        close = Account("run:close/r1", 1_000_000, "run")
        r1 = await ledger.reserve(CallKey("close", "r1", "post"), [close, day, module], 400_000)
        await ledger.settle(r1, 250_000, ChargeDetail(model="gpt-4o-mini", module="Finance", input_tokens=900,
                                                       output_tokens=100))
        await ledger.reserve(CallKey("close", "r1", "post", call=2), [close, day, module], 300_000)  # in flight
        hr = Account("run:payroll/r9", 3_000_000, "run")
        r2 = await ledger.reserve(CallKey("payroll", "r9", "pay"), [hr, day], 800_000)
        await ledger.settle(r2, 500_000, ChargeDetail(model="claude-haiku-4-5", module="HR", input_tokens=50,
                                                       output_tokens=5))

    try:
        asyncio.run(go())
    finally:
        ledger.close()


def test_parse_since() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_since("yesterday", now)


def test_costs_json_sums_by_workflow_module_model_day_with_holds_and_budgets_left(
    ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(ledger_url)
    assert main(["costs", "--json", "--ledger-url", ledger_url]) == 0
    view = json.loads(capsys.readouterr().out)
    today = datetime.now(UTC).date().isoformat()
    assert view["total_usd"] == "0.750000" and view["calls"] == 2
    assert view["in_flight_usd"] == "0.300000"
    assert view["by_workflow"] == {"payroll": "0.500000", "close": "0.250000"}
    assert view["by_module"] == {"HR": "0.500000", "Finance": "0.250000"}
    assert view["by_model"] == {"claude-haiku-4-5": "0.500000", "gpt-4o-mini": "0.250000"}
    assert view["by_day"] == {today: "0.750000"}
    budgets = {b["account"]: b for b in view["budgets"]}
    assert budgets["run:close/r1"] == {"account": "run:close/r1", "kind": "run", "budget_usd": "1.000000",
                                       "spent_usd": "0.250000", "reserved_usd": "0.300000", "left_usd": "0.450000"}
    assert budgets[f"day:{today}"]["left_usd"] == "8.950000"  # 10 - 0.75 spent - 0.30 held
    assert budgets[f"module:Finance:{today}"]["left_usd"] == "1.450000"
    assert set(budgets) == {"run:close/r1", "run:payroll/r9", f"day:{today}", f"module:Finance:{today}"}


def test_costs_of_one_workflow_as_a_table(ledger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(ledger_url)
    assert main(["costs", "--workflow", "close", "--since", "1h", "--ledger-url", ledger_url]) == 0
    out = capsys.readouterr().out
    assert "Spend of close since" in out and "$0.250000 in 1 requests" in out and "in flight: $0.300000" in out
    assert "run:close/r1" in out and "run:payroll/r9" not in out and "payroll " not in out


def test_costs_since_the_future_is_empty(ledger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(ledger_url)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert main(["costs", "--json", "--since", tomorrow, "--ledger-url", ledger_url]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["calls"] == 0 and view["by_workflow"] == {} and view["budgets"] == []


def test_costs_with_an_unreachable_ledger_fails_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'ledger.db'}"
    assert main(["costs", "--ledger-url", url]) == 1
    assert "unavailable" in capsys.readouterr().err


SPEC = """kind: Workflow
name: close
cost_budget: 0.001
agents:
  - name: post
    llm_config: {model: acme-1, max_tokens: 200}
    prompt_template: Post the month-end accruals.
"""
ENGINE = """kind: EngineConfig
max_tool_rounds: 1
cost_config:
  model_costs:
    acme-1: {input: 0.001, output: 0.002}
"""


def _specs(tmp_path: Path, engine_at: str = "engine.yaml") -> Path:
    (tmp_path / "specs" / "finance").mkdir(parents=True)
    spec = tmp_path / "specs" / "finance" / "close.yaml"
    spec.write_text(SPEC)
    (tmp_path / "specs" / engine_at).write_text(ENGINE)
    return spec


def _estimate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
    code = main(["estimate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_estimate_finds_the_engine_config_as_the_dag_loader_does(
    tmp_path: Path, ledger_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENGINE_CONFIG_ENV, raising=False)
    spec = _specs(tmp_path)  # acme-1 is priced only by that engine config, one folder up
    code, out, err = _estimate([str(spec), "--items", "4", "--json", "--ledger-url", ledger_url], capsys)
    assert code == 0, err
    est = json.loads(out)
    assert est["items"] == 4 and est["agents"][0]["calls"] == 2 and est["agents"][0]["max_tokens"] == 200
    assert est["typical_usd"] is None and est["budget_usd"] == "0.001000"
    assert float(est["total_worst_case_usd"]) == pytest.approx(4 * float(est["worst_case_usd"]))
    code, out, _ = _estimate([str(spec), "--ledger-url", ledger_url], capsys)
    assert code == 0 and "## Cost forecast: close" in out and "| post | acme-1 |" in out


def test_estimate_engine_config_from_the_environment_or_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _specs(tmp_path, engine_at="../elsewhere.yaml")  # out of the loader's reach
    monkeypatch.delenv(ENGINE_CONFIG_ENV, raising=False)
    code, _, err = _estimate([str(spec), "--no-ledger"], capsys)
    assert code == 1 and "no price for model 'acme-1'" in err
    code, out, _ = _estimate([str(spec), "--no-ledger", "--engine-config", str(tmp_path / "elsewhere.yaml")], capsys)
    assert code == 0 and "| post | acme-1 |" in out
    monkeypatch.setenv(ENGINE_CONFIG_ENV, str(tmp_path / "elsewhere.yaml"))
    assert _estimate([str(spec), "--no-ledger"], capsys)[0] == 0


def test_estimate_of_a_broken_spec_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Workflow\nname: x\nagents: []\n")
    code, _, err = _estimate([str(bad), "--no-ledger"], capsys)
    assert code == 1 and "bad.yaml:3" in err
    with pytest.raises(SystemExit):
        main(["estimate", str(bad), "--items", "0"])

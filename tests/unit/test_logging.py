from __future__ import annotations

import io
import json
import logging

from aegis import logging as aegis_logging


def test_log_lines_are_json_with_service_severity_and_trace_id() -> None:
    stream = io.StringIO()
    aegis_logging.configure("risk", stream=stream)
    token = aegis_logging.trace_id_var.set("4bf92f3577b34da6a3ce929d0e0e4736")
    try:
        logging.getLogger("aegis.risk").info("sized %s", "BTCUSDT", extra={"notional": "2000.00"})
    finally:
        aegis_logging.trace_id_var.reset(token)
    logging.getLogger("aegis.risk").info("no trace")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["service"] == "risk"
    assert first["severity"] == "INFO"
    assert first["message"] == "sized BTCUSDT"
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first["notional"] == "2000.00"
    assert "trace_id" not in second


def test_root_logger_is_warning_and_aegis_loggers_info_by_default() -> None:
    stream = io.StringIO()
    aegis_logging.configure("feed", stream=stream)
    logging.getLogger("some.library").info("chatty")
    logging.getLogger("some.library").warning("worth seeing")
    logging.getLogger("aegis.feed").info("ours")
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == ["worth seeing", "ours"]

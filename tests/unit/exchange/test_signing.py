"""Tests for aegis.exchange.binance request signing against Binance's documented HMAC-SHA256 examples."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from aegis.errors import ValidationError
from aegis.exchange.binance import encode_params, sign, signed_query, total_params

EXAMPLES = "binance/binance_official_docs/hmac_sha256_signature_examples.json"


@pytest.fixture(scope="module")
def docs(shared_data: Path) -> dict:
    return json.loads((shared_data / EXAMPLES).read_text())


def test_usdm_examples_1_and_2(docs: dict) -> None:
    secret = docs["usdm_futures"]["secretKey"]
    for example in docs["usdm_futures"]["examples"][:2]:
        assert sign(secret, example["totalParams"]) == example["signature"]


def test_usdm_example_3_signs_query_plus_body_with_the_docs_stray_space(docs: dict) -> None:
    secret = docs["usdm_futures"]["secretKey"]
    example = docs["usdm_futures"]["examples"][2]
    printed = example["totalParams_as_printed_in_docs"]
    assert sign(secret, printed) == example["signature"]
    joined = total_params(example["queryString"], example["requestBody"])
    assert joined == printed.replace("timestamp= ", "timestamp=")  # no '&' at the join
    assert sign(secret, joined) == "30baaf0fab549bbeda7f5ef201898b34122da25fd23c646cac2c529aebe670a4"


def test_spot_reference_example(docs: dict) -> None:
    spot = docs["spot_reference"]
    assert sign(spot["secretKey"], spot["totalParams"]) == spot["signature"]


def test_encode_params_rebuilds_example_1(docs: dict) -> None:
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": Decimal("1"),
        "price": Decimal("9000"),
        "timeInForce": "GTC",
        "recvWindow": 5000,
        "timestamp": 1591702613943,
    }
    example = docs["usdm_futures"]["examples"][0]
    assert encode_params(params) == example["totalParams"]
    assert signed_query(docs["usdm_futures"]["secretKey"], params).endswith("&signature=" + example["signature"])


def test_encode_params_writes_plain_decimals_and_skips_none() -> None:
    assert encode_params([("quantity", Decimal("1E-7")), ("reduceOnly", True), ("price", None)]) == (
        "quantity=0.0000001&reduceOnly=true"
    )
    with pytest.raises(ValidationError, match="float"):
        encode_params({"price": 0.1})


def test_sign_validates_its_arguments() -> None:
    with pytest.raises(ValidationError, match="secret"):
        sign("", "a=1")
    with pytest.raises(ValidationError, match="payload"):
        sign("k", b"a=1")  # type: ignore[arg-type]

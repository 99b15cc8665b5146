"""Our money-out requests against an independent double, `daraja-mock` (PyPI): it records what it is
sent, so B2C v3, Transaction Status and Account Balance bodies are checked field by field against
Daraja's documented shape (refs: the Daraja reference pages), not only against our own simulator.
The SecurityCredential is proven by decrypting it with the simulator's private key."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from daraja_mock import DarajaMock
from pydantic import SecretStr

from core.daraja.app import InitiatorCredentials
from core.daraja.client import DarajaClient
from core.daraja.money_out import AccountBalanceRequest, B2CPaymentRequest, TransactionStatusRequest
from core.daraja.tokens import MemoryTokenStore

CERTS = Path(__file__).resolve().parents[3] / "sim" / "daraja" / "certs"
RESULT, TIMEOUT = "https://lipapush.example/callbacks/daraja/tok/b2c-result", "https://lipapush.example/t"


def decrypt(credential: str) -> str:
    key = serialization.load_pem_private_key((CERTS / "simulator-key.pem").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.decrypt(base64.b64decode(credential), padding.PKCS1v15()).decode()


@pytest.fixture(scope="module")
def mock() -> Iterator[tuple[DarajaMock, str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    double = DarajaMock()
    yield double, double.run_thread(port=port)


@pytest.fixture
async def client() -> AsyncIterator[DarajaClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield DarajaClient(http=http, tokens=MemoryTokenStore(), retry_backoff=(0.0,))


def creds(base_url: str) -> InitiatorCredentials:
    return InitiatorCredentials(
        base_url=base_url,
        consumer_key="test_key",
        consumer_secret=SecretStr("test_secret"),
        short_code="600992",
        initiator_name="testapi",
        initiator_password=SecretStr("Safaricom#999"),
        certificate=(CERTS / "simulator.cer").read_bytes(),
    )


def sent(double: DarajaMock, path: str) -> dict[str, Any]:
    [entry] = [e for e in double.request_log() if e["path"] == path]
    return dict(entry["body"])


async def test_b2c_v3(mock: tuple[DarajaMock, str], client: DarajaClient) -> None:
    double, url = mock
    double.reset()
    accepted = await client.b2c_payment(
        creds(url),
        B2CPaymentRequest(
            originator_conversation_id="lp_6f1c0e1d2a3b4c5d",
            phone="254705912645",
            amount=1500,
            result_url=RESULT,
            timeout_url=TIMEOUT,
            remarks="Salary November",
            command="SalaryPayment",
            occasion="November",
        ),
    )
    assert accepted.response_code == "0" and accepted.conversation_id.startswith("AG_")
    body = sent(double, "/mpesa/b2c/v3/paymentrequest")
    assert decrypt(body.pop("SecurityCredential")) == "Safaricom#999"
    assert body == {
        "OriginatorConversationID": "lp_6f1c0e1d2a3b4c5d",
        "InitiatorName": "testapi",
        "CommandID": "SalaryPayment",
        "Amount": 1500,
        "PartyA": "600992",
        "PartyB": "254705912645",
        "Remarks": "Salary November",
        "QueueTimeOutURL": TIMEOUT,
        "ResultURL": RESULT,
        "Occassion": "November",  # sic: Daraja's spelling
    }


async def test_transaction_status(mock: tuple[DarajaMock, str], client: DarajaClient) -> None:
    double, url = mock
    double.reset()
    await client.transaction_status(
        creds(url),
        TransactionStatusRequest(transaction_id="NEF61H8J60", result_url=RESULT, timeout_url=TIMEOUT),
    )
    body = sent(double, "/mpesa/transactionstatus/v1/query")
    assert decrypt(body.pop("SecurityCredential")) == "Safaricom#999"
    assert body == {
        "Initiator": "testapi",
        "CommandID": "TransactionStatusQuery",
        "TransactionID": "NEF61H8J60",
        "PartyA": "600992",
        "IdentifierType": "4",
        "ResultURL": RESULT,
        "QueueTimeOutURL": TIMEOUT,
        "Remarks": "OK",
    }


async def test_account_balance(mock: tuple[DarajaMock, str], client: DarajaClient) -> None:
    double, url = mock
    double.reset()
    await client.account_balance(creds(url), AccountBalanceRequest(result_url=RESULT, timeout_url=TIMEOUT))
    body = sent(double, "/mpesa/accountbalance/v1/query")
    assert decrypt(body.pop("SecurityCredential")) == "Safaricom#999"
    assert body == {
        "Initiator": "testapi",
        "CommandID": "AccountBalance",
        "PartyA": "600992",
        "IdentifierType": "4",
        "Remarks": "OK",
        "QueueTimeOutURL": TIMEOUT,
        "ResultURL": RESULT,
    }

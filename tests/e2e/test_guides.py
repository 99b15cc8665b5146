"""Every program the developer guides show (docs/guides/code/<lang>/) runs, in Python, Node.js and PHP,
against the real `lipapush serve`, the way the guides tell a developer to run it:

- register_endpoint + webhook_receiver + accept_payment: a test payment on the simulator ends
  `success`, and the receiver prints that it verified the signed `payment.succeeded` for that payment;
  forged deliveries (body changed, stale timestamp, wrong secret) are answered 400 and never verified;
- errors_and_retries: an amount of 0 is a 422 with its error body, the same Idempotency-Key twice is the
  same payment (one prompt reaches the simulator), the same key for another amount is a 409;
- magic_numbers: each ending ends in the status the test-mode guide's table promises;
- each language's verify function passes the shared signature vector (valid, rotated, tampered, wrong
  secret, old and future timestamps, missing headers, wrong version, malformed).

Node.js and PHP are outside programs: with LIPAPUSH_REQUIRE_SERVICES=1 (CI, which installs them in
.ci/run) a missing one fails the test; otherwise it is skipped, saying what to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from core.webhooks.signing import new_secret
from tests.e2e.conftest import (
    NewBusiness,
    Serve,
    _used_msisdns,
    bearer,
    msisdn,
    sim_requests,
    unique_phone,
    wait_for,
)
from tests.support import services
from tests.support.guides import LANGS, magic_table, program

RUN_TIMEOUT = 120.0
INSTALL = {
    "node": "Node.js 18 or later (apt-get install nodejs)",
    "php": "PHP 8.2 with curl (apt-get install php-cli php-curl)",
}


def _missing(lang: str) -> str | None:
    """Why `lang`'s programs cannot run here, or None."""
    if lang == "python":
        return None
    exe = shutil.which(lang)
    if exe is None:
        return f"{lang} is not installed"
    if lang == "node":
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
        if int(version.lstrip("v").split(".")[0] or 0) < 18:
            return f"node {version.strip()} is too old"
    if lang == "php":
        probe = subprocess.run([exe, "-r", "exit(function_exists('curl_init') ? 0 : 1);"], check=False)
        if probe.returncode != 0:
            return "php has no curl extension"
    return None


def interpreter(lang: str) -> list[str]:
    """The command that runs `lang`'s programs; fails under LIPAPUSH_REQUIRE_SERVICES=1 when it is
    missing, else skips."""
    if lang == "python":
        return [sys.executable]
    if reason := _missing(lang):
        message = f"{reason}: the {lang} guide programs need {INSTALL[lang]}"
        if services.REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    exe = shutil.which(lang)
    assert exe
    return [exe]


def program_env(**values: str) -> dict[str, str]:
    """Only what a developer's shell would hold: PATH and the variables the guide names."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", **values}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


async def run(lang: str, name: str, **env: str) -> Run:
    path = program(lang, name)
    proc = await asyncio.create_subprocess_exec(
        *interpreter(lang),
        path.name,
        cwd=path.parent,
        env=program_env(**env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{path} did not finish within {RUN_TIMEOUT}s") from None
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


@dataclass
class Receiver:
    url: str
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    def verified(self) -> list[dict[str, Any]]:
        return [json.loads(line.partition("verified ")[2]) for line in self.lines if "verified {" in line]

    def rejected(self) -> list[str]:
        return [line for line in self.lines if "rejected: " in line]

    def output(self) -> str:
        return "\n".join(self.lines)


@contextlib.asynccontextmanager
async def receiver(lang: str, *, port: int, secret: str) -> AsyncIterator[Receiver]:
    """The language's webhook receiver, started as its guide says, listening on 127.0.0.1:port."""
    path = program(lang, "webhook_receiver")
    # PHP's receiver is a page: PHP's own web server serves it (any web server would).
    args = ["-S", f"127.0.0.1:{port}", path.name] if lang == "php" else [path.name]
    proc = await asyncio.create_subprocess_exec(
        *interpreter(lang),
        *args,
        cwd=path.parent,
        env=program_env(WEBHOOK_SECRET=secret, PORT=str(port), HOST="127.0.0.1"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    rec = Receiver(url=f"http://127.0.0.1:{port}/lipapush/webhooks", proc=proc)

    async def read() -> None:
        assert proc.stdout
        async for line in proc.stdout:
            rec.lines.append(line.decode(errors="replace").rstrip())

    reader = asyncio.create_task(read())
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"{path} exited with {proc.returncode}:\n{rec.output()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} not listening on {port} after 30s:\n{rec.output()}")
            await asyncio.sleep(0.05)
        yield rec
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await reader


def signed(
    secret: str, body: bytes, *, at: datetime | None = None, msg_id: str = "msg_forged"
) -> dict[str, str]:
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


@pytest.mark.parametrize("lang", LANGS)
async def test_accept_a_payment_and_verify_its_webhook(
    serve: Serve, new_business: NewBusiness, lang: str
) -> None:
    interpreter(lang)
    biz = await new_business(name=f"Guide {lang}")
    env = {"LIPAPUSH_URL": serve.url, "LIPAPUSH_KEY": biz.key}
    port = services.free_port()

    # Register the receiver's URL first, as the guide says: that gives the secret it verifies with.
    registered = await run(
        lang, "register_endpoint", **env, WEBHOOK_URL=f"http://127.0.0.1:{port}/lipapush/webhooks"
    )
    assert registered.returncode == 0, registered
    [endpoint] = registered.json_lines()
    assert endpoint["secret"].startswith("whsec_") and endpoint["mode"] == "test"
    assert endpoint["event_types"] == [
        "payment.cancelled",
        "payment.expired",
        "payment.failed",
        "payment.succeeded",
    ]
    secret = endpoint["secret"]

    async with receiver(lang, port=port, secret=secret) as rec, httpx.AsyncClient(timeout=10) as http:
        # Forged deliveries first: each is refused and nothing is handled.
        genuine = json.dumps({"type": "payment.succeeded", "data": {"id": "forged", "amount": 10}}).encode()
        tampered = genuine.replace(b'"amount": 10', b'"amount": 99999')
        forgeries = {
            "body changed after signing": (tampered, signed(secret, genuine)),
            "signed ten minutes ago": (
                genuine,
                signed(secret, genuine, at=datetime.now(UTC) - timedelta(minutes=10)),
            ),
            "signed with another secret": (genuine, signed(new_secret(), genuine)),
            "no signature at all": (genuine, {"content-type": "application/json"}),
        }
        for why, (body, headers) in forgeries.items():
            r = await http.post(rec.url, content=body, headers=headers)
            assert r.status_code == 400, (why, r.status_code, rec.output())

        async def all_rejected() -> bool:
            return len(rec.rejected()) >= len(forgeries)

        await wait_for(all_rejected, what=f"{lang} receiver logged {len(forgeries)} rejections")
        assert rec.verified() == [], rec.output()

        # A test payment, paid on the simulator, as the accept-a-payment guide runs it.
        paid = await run(
            lang, "accept_payment", **env, CUSTOMER_PHONE=unique_phone("0111"), WAIT_SECONDS="30"
        )
        assert paid.returncode == 0, paid
        payment = paid.json_lines()[-1]
        assert (payment["status"], payment["mode"], payment["amount"]) == ("success", "test", 150)
        assert payment["receipt"] and payment["customer_name"] == "Wanjiku"

        async def verified_it() -> list[dict[str, Any]]:
            return [v for v in rec.verified() if v["id"] == payment["id"]]

        [seen] = await wait_for(
            verified_it, what=f"{lang} receiver verified payment {payment['id']}", timeout=30
        )
        assert (seen["type"], seen["status"]) == ("payment.succeeded", "success")
        assert seen["webhook_id"].startswith("msg_")

        # lipapush saw the receiver's 2xx: the delivery is logged as succeeded, once.
        async def delivered() -> list[dict[str, Any]] | None:
            async with httpx.AsyncClient(base_url=serve.url, timeout=10) as api:
                r = await api.get(
                    f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=bearer(biz.key)
                )
            items: list[dict[str, Any]] = r.json()["items"]
            return items if items and all(d["status"] == "succeeded" for d in items) else None

        [delivery] = await wait_for(delivered, what="delivery logged as succeeded")
        assert (delivery["event_type"], delivery["object_id"]) == ("payment.succeeded", payment["id"])
        assert delivery["message_id"] == seen["webhook_id"]
        assert len(rec.rejected()) == len(forgeries), rec.output()


@pytest.mark.parametrize("lang", LANGS)
async def test_errors_retries_and_idempotency(
    serve: Serve, new_business: NewBusiness, lang: str, http: httpx.AsyncClient
) -> None:
    interpreter(lang)
    biz = await new_business(name=f"Errors {lang}")
    phone = unique_phone("0111")
    result = await run(
        lang, "errors_and_retries", LIPAPUSH_URL=serve.url, LIPAPUSH_KEY=biz.key, CUSTOMER_PHONE=phone
    )
    assert result.returncode == 0, result
    steps = {line["step"]: line for line in result.json_lines()}
    assert list(steps) == ["invalid_amount", "first", "replay", "conflict"], result

    invalid = steps["invalid_amount"]
    assert invalid["status"] == 422
    assert invalid["body"] == {
        "error": "invalid_input",
        "detail": "amount: Amount must be at least KES 1.",
        "errors": {"amount": "Amount must be at least KES 1."},
    }
    first, replay = steps["first"], steps["replay"]
    assert (first["status"], replay["status"]) == (201, 201)
    assert first["body"]["id"] == replay["body"]["id"]
    assert first["body"]["phone"] == msisdn(phone)
    assert steps["conflict"]["status"] == 409
    assert steps["conflict"]["body"]["error"] == "idempotency_key_reused"

    # One payment and one prompt for that phone, however many requests were sent.
    r = await http.get("/api/transactions", params={"phone": phone}, headers=biz.headers)
    assert [p["id"] for p in r.json()["items"]] == [first["body"]["id"]]
    assert len(await sim_requests(http, phone=msisdn(phone))) == 1


def magic_prefix(endings: list[str]) -> str:
    """The first six digits of phones no other test in this run uses with any of these endings (the
    simulator's request log is shared by the whole run)."""
    while True:
        prefix = unique_phone("0000")[:6]
        numbers = {msisdn(prefix + ending) for ending in endings}
        if not numbers & _used_msisdns:
            _used_msisdns.update(numbers)
            return prefix


@pytest.mark.parametrize("lang", LANGS)
async def test_magic_numbers_end_as_the_guide_says(
    serve: Serve, new_business: NewBusiness, lang: str
) -> None:
    interpreter(lang)
    biz = await new_business(name=f"Magic {lang}")
    prefix = magic_prefix(list(magic_table()))
    result = await run(
        lang,
        "magic_numbers",
        LIPAPUSH_URL=serve.url,
        LIPAPUSH_KEY=biz.key,
        PHONE_PREFIX=prefix,
        WAIT_SECONDS="60",
    )
    assert result.returncode == 0, result
    got = {line["ending"]: line for line in result.json_lines()}
    table = magic_table()
    assert {ending: line["status"] for ending, line in got.items()} == table, result
    for ending, line in got.items():
        assert line["phone"] == msisdn(prefix + ending)
    assert got["1032"]["result_code"] == "1032" and got["2001"]["result_code"] == "2001"


# -- the shared signature vector, through each language's own verify function --------------------------
BODY = '{"type":"payment.succeeded","data":{"id":"p1","customer_name":"Wanjiku Muthoni — café"}}'


def signature_vector(secret: str, now: int) -> list[dict[str, Any]]:
    """SignatureAPI's six cases (platform reference §6.5) and a few more, each with the verdict a
    receiver must reach. The clock cases keep 10 s from the 300 s edge: the Python guide leaves the
    clock to standardwebhooks, which reads the real one."""
    other = new_secret()

    def case(
        name: str,
        ok: bool,
        *,
        signed_body: str = BODY,
        secrets: tuple[str, ...] = (secret,),
        age: int = 0,
        drop: str = "",
        signature: str = "",
    ) -> dict[str, Any]:
        msg_id = f"msg_{name}"
        at = datetime.fromtimestamp(now - age, UTC)
        sig = signature or " ".join(Webhook(s).sign(msg_id, at, signed_body) for s in secrets)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(now - age), "webhook-signature": sig}
        headers.pop(drop, None)
        return {"name": name, "ok": ok, "body": BODY, "headers": headers}

    right_mac = Webhook(secret).sign("msg_right_mac_not_v1", datetime.fromtimestamp(now, UTC), BODY)
    return [
        case("valid", True),
        case("rotation_second_matches", True, secrets=(other, secret)),
        case("tampered_body", False, signed_body='{"type":"payment.succeeded","data":{"id":"p2"}}'),
        case("wrong_secret", False, secrets=(other,)),
        case("timestamp_310_s_old", False, age=310),
        case("timestamp_310_s_ahead", False, age=-310),
        case("timestamp_290_s_old", True, age=290),
        case("missing_signature", False, drop="webhook-signature"),
        case("missing_id", False, drop="webhook-id"),
        case("missing_timestamp", False, drop="webhook-timestamp"),
        case("right_mac_not_v1", False, signature=right_mac.replace("v1,", "v2,")),
        case("no_comma", False, signature="garbage"),
    ]


NODE_HARNESS = """
import { readFileSync } from "node:fs";
import { verifyWebhook } from "./verify_webhook.mjs";
const { secret, now, cases } = JSON.parse(readFileSync(0, "utf8"));
for (const c of cases) {
  let ok = true;
  try { verifyWebhook(secret, c.headers, Buffer.from(c.body, "utf8"), now); } catch { ok = false; }
  console.log(JSON.stringify({ name: c.name, ok }));
}
"""

PHP_HARNESS = """
require getcwd() . '/verify_webhook.php';
['secret' => $secret, 'now' => $now, 'cases' => $cases] = json_decode(stream_get_contents(STDIN), true);
foreach ($cases as $c) {
    try { verify_webhook($secret, $c['headers'], $c['body'], $now); $ok = true; }
    catch (WebhookVerificationError | JsonException) { $ok = false; }
    echo json_encode(['name' => $c['name'], 'ok' => $ok]), "\\n";
}
"""


def _python_verdicts(secret: str, vector: list[dict[str, Any]]) -> dict[str, bool]:
    path = program("python", "webhook_receiver")
    spec = importlib.util.spec_from_file_location("guide_webhook_receiver", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verdicts = {}
    for case in vector:
        try:
            module.verify_webhook(secret, case["body"].encode(), case["headers"])
            verdicts[case["name"]] = True
        except (module.WebhookVerificationError, ValueError):
            verdicts[case["name"]] = False
    return verdicts


@pytest.mark.parametrize("lang", LANGS)
async def test_each_verify_function_passes_the_signature_vector(lang: str) -> None:
    secret, now = new_secret(), int(time.time())
    vector = signature_vector(secret, now)
    expected = {c["name"]: c["ok"] for c in vector}
    if lang == "python":
        assert _python_verdicts(secret, vector) == expected
        return
    exe = interpreter(lang)
    code = program(lang, "verify_webhook").parent
    args = ["--input-type=module", "-e", NODE_HARNESS] if lang == "node" else ["-r", PHP_HARNESS]
    proc = await asyncio.create_subprocess_exec(
        *exe, *args, cwd=code, env=program_env(), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdin = json.dumps({"secret": secret, "now": now, "cases": vector}).encode()
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode == 0, err.decode()
    verdicts = {row["name"]: row["ok"] for row in map(json.loads, out.decode().splitlines())}
    assert verdicts == expected

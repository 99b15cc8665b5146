"""The routes of the money-out and C2B APIs and of the ``/_sim`` controls a test drives them with.

Each Daraja API is a POST that checks the bearer token first, then parses the JSON body and records it in
``/_sim/requests`` before validating it (like STK push), and answers what its module returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sim.daraja import b2c, enquiries, reversal
from sim.daraja.books import Books
from sim.daraja.c2b import C2B
from sim.daraja.c2b_requests import validate_register, validate_simulate
from sim.daraja.controls import BalanceIn, C2BPayIn, InitiatorIn, ValidationIn, to_cents
from sim.daraja.money_out_requests import validate_b2c, validate_balance, validate_reversal, validate_status
from sim.daraja.transactions import CustomerName
from sim.daraja.validation import parse_json_payload

Handler = Callable[[dict[str, Any]], dict[str, str]]


class Gateway(Protocol):
    """What the routes need from the simulator (``app.DarajaSimulator``)."""

    books: Books
    c2b: C2B

    def check_bearer(self, authorization: str | None) -> None: ...

    def record_request(self, path: str, body: dict[str, Any]) -> None: ...


def money_router(gateway: Gateway) -> APIRouter:
    router = APIRouter()
    books, c2b = gateway.books, gateway.c2b

    def daraja_api(path: str, handle: Handler) -> None:
        async def endpoint(request: Request) -> Response:
            gateway.check_bearer(request.headers.get("authorization"))
            body = parse_json_payload(request.headers.get("content-type"), await request.body())
            gateway.record_request(path, body)
            return JSONResponse(handle(body))

        router.add_api_route(path, endpoint, methods=["POST"], name=path)

    apis: dict[str, Handler] = {
        "/mpesa/b2c/v3/paymentrequest": lambda body: b2c.pay(books, validate_b2c(body, v3=True)),
        "/mpesa/b2c/v1/paymentrequest": lambda body: b2c.pay(books, validate_b2c(body, v3=False)),
        "/mpesa/accountbalance/v1/query": lambda body: enquiries.account_balance(
            books, validate_balance(body)
        ),
        "/mpesa/transactionstatus/v1/query": lambda body: enquiries.transaction_status(
            books, validate_status(body)
        ),
        "/mpesa/reversal/v1/request": lambda body: reversal.reverse(books, validate_reversal(body)),
        "/mpesa/c2b/v1/registerurl": lambda body: c2b.register(validate_register(body), version=1),
        "/mpesa/c2b/v2/registerurl": lambda body: c2b.register(validate_register(body), version=2),
        "/mpesa/c2b/v1/simulate": lambda body: c2b.simulate(validate_simulate(body)),
        "/mpesa/c2b/v2/simulate": lambda body: c2b.simulate(validate_simulate(body)),
    }
    for path, handle in apis.items():
        daraja_api(path, handle)

    @router.get("/_sim/results")
    async def sim_results() -> list[dict[str, Any]]:
        """Money-out deliveries (``kind`` result or queue_timeout): url, body, status_code, reply, error."""
        return books.courier.log

    @router.post("/_sim/initiators")
    async def sim_initiator(body: InitiatorIn) -> dict[str, str]:
        books.initiators.set(body.shortcode, body.name, body.password)
        return {"shortcode": body.shortcode, "name": body.name}

    @router.post("/_sim/balance")
    async def sim_set_balance(body: BalanceIn) -> dict[str, str]:
        accounts = books.accounts.set(
            body.shortcode, utility=to_cents(body.utility), working=to_cents(body.working)
        )
        return {"shortcode": body.shortcode, **accounts.as_dict()}

    @router.get("/_sim/balance/{shortcode}")
    async def sim_balance(shortcode: str) -> dict[str, str]:
        return {"shortcode": shortcode, **books.accounts.of(shortcode).as_dict()}

    @router.post("/_sim/c2b/validation")
    async def sim_c2b_validation(body: ValidationIn) -> dict[str, Any]:
        c2b.set_validation(body.shortcode, body.enabled)
        return {"shortcode": body.shortcode, "enabled": body.enabled}

    @router.post("/_sim/c2b/pay")
    async def sim_c2b_pay(body: C2BPayIn) -> dict[str, str]:
        name = None
        if body.first_name is not None:
            name = CustomerName(body.first_name, body.middle_name, body.last_name)
        payment = c2b.pay(
            shortcode=body.shortcode,
            command_id=body.command_id,
            amount=body.amount,
            msisdn=body.msisdn,
            bill_ref=body.bill_ref,
            invoice_number=body.invoice_number,
            name=name,
        )
        return {"TransID": payment.trans_id}

    @router.get("/_sim/c2b")
    async def sim_c2b_payments() -> list[dict[str, Any]]:
        return [payment.as_dict() for payment in c2b.payments.values()]

    @router.get("/_sim/c2b/{trans_id}")
    async def sim_c2b_payment(trans_id: str) -> dict[str, Any]:
        payment = c2b.payments.get(trans_id)
        if payment is None:
            raise StarletteHTTPException(404)
        return payment.as_dict()

    return router

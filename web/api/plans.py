"""/api/plan and /api/plan/options: the business's API plan, this month's live pushes against its quota,
choosing a plan and paying it from the wallet (core/plans/use_cases.py decides who may)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.payments.schemas import PaymentOut
from core.phones import normalize_msisdn
from core.plans import use_cases
from core.plans.schemas import PlanOut, PlanPaid, PlanStatusOut
from web.deps import CurrentActor

router = APIRouter(tags=["plans"])


class ChoosePlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=40, description="a plan's code from GET /api/plan/options")


@router.get("/plan")
async def get_plan(actor: CurrentActor) -> PlanStatusOut:
    """The plan the business chose, the one that applies now (the default while a fee is unpaid), and
    this Nairobi month's live payment requests against its quota. Test-mode pushes never count."""
    return await use_cases.plan_status(actor)


@router.get("/plan/options")
async def list_plans(actor: CurrentActor) -> list[PlanOut]:
    """The plans on offer, cheapest first."""
    return await use_cases.plans_on_offer(actor)


@router.post("/plan")
async def choose_plan(body: ChoosePlanIn, actor: CurrentActor) -> PlanStatusOut:
    """Move to another plan. A free plan applies at once; a plan with a fee once it is paid
    (POST /api/plan/pay)."""
    return await use_cases.choose_plan(actor, code=body.code)


class PayPlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    via: Literal["wallet", "mpesa"] = Field(
        default="wallet", description="wallet: at once; mpesa: an STK push whose arrival pays it"
    )
    phone: str | None = Field(
        default=None, description="mpesa: the phone to prompt (default: the business's)"
    )

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return None if v is None else normalize_msisdn(v)


@router.post(
    "/plan/pay",
    response_model=None,
    responses={
        200: {"model": PlanPaid, "description": "Paid from the wallet"},
        202: {
            "model": PaymentOut,
            "description": "The M-Pesa prompt is on its way; the plan is paid when it lands",
        },
    },
)
async def pay_plan(actor: CurrentActor, body: PayPlanIn | None = None) -> PlanPaid | JSONResponse:
    """Pay the chosen plan: the rest of this month at its share of the fee, or the next month once this
    one is paid. From the wallet (default) it applies at once; `{"via": "mpesa"}` sends an STK push
    (202 with the pending top-up payment) and the plan is paid when its money lands in the wallet. 409
    says what is missing (a free plan, too little in the wallet)."""
    body = body or PayPlanIn()
    if body.via == "mpesa":
        payment = await use_cases.pay_plan_by_mpesa(actor, phone=body.phone)
        return JSONResponse(jsonable_encoder(payment), status_code=202)
    return await use_cases.pay_plan(actor)

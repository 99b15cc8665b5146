"""/api/channels: a business's M-Pesa channels (core/tenants/use_cases_channels.py decides who may).

POST /api/settings keeps saving the primary channel, so a business with one channel never needs these."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from core.payments.schemas import PaymentOut
from core.tenants import use_cases_channels as use_cases
from core.tenants.channels import NAME_MAX
from core.tenants.schemas import ChannelIn, ChannelOut
from core.tenants.use_cases_channels import ChannelAdded, ChannelView
from web.deps import CurrentActor

router = APIRouter(tags=["channels"])


class VerificationOut(BaseModel):
    state: str = Field(description="verified, pending (waiting for the owner), failed or unverified")
    reason: str | None = Field(description="why the last test failed")
    verified_at: datetime | None
    phone: str | None = Field(description="the phone the KES 1 test went to")


class ChannelViewOut(ChannelOut):
    verification_state: VerificationOut
    app_count: int = Field(description="apps whose pushes go through this channel")


class ChannelSavedOut(BaseModel):
    channel: ChannelViewOut
    verification: PaymentOut | None = Field(description="the KES 1 test push, when it went out")
    verification_error: str | None = Field(default=None, description="why it did not go out")


class ChannelAddIn(ChannelIn):
    name: str = Field(
        min_length=1, max_length=200, description=f"1 to {NAME_MAX} characters, unique in the business"
    )


class ChannelNameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


def _view(v: ChannelView) -> ChannelViewOut:
    s = v.verification
    return ChannelViewOut(
        **v.channel.model_dump(),
        verification_state=VerificationOut(
            state=s.state, reason=s.reason, verified_at=s.verified_at, phone=s.phone
        ),
        app_count=v.app_count,
    )


def _saved(a: ChannelAdded) -> ChannelSavedOut:
    return ChannelSavedOut(channel=_view(a.view), verification=a.verification, verification_error=a.error)


@router.get("/channels")
async def list_channels(actor: CurrentActor) -> list[ChannelViewOut]:
    """The business's M-Pesa channels, the primary one first, secrets masked. Owner and manager; an
    API key needs business:read."""
    return [_view(v) for v in await use_cases.list_channels(actor)]


@router.post("/channels", status_code=201)
async def add_channel(body: ChannelAddIn, actor: CurrentActor) -> ChannelSavedOut:
    """Add a channel (a till per branch, a paybill beside a till, a sandbox channel for test keys),
    then send its KES 1 test push to the owner's phone: its success verifies it. An app then uses it
    (POST /api/apps with `channel_id`). The first channel of a business is its primary one."""
    data = ChannelIn.model_validate(body.model_dump(exclude={"name"}))
    return _saved(await use_cases.add_channel(actor, name=body.name, data=data))


@router.get("/channels/{channel_id}")
async def get_channel(channel_id: uuid.UUID, actor: CurrentActor) -> ChannelViewOut:
    return _view(await use_cases.get_channel(actor, channel_id))


@router.put("/channels/{channel_id}")
async def replace_channel(channel_id: uuid.UUID, body: ChannelIn, actor: CurrentActor) -> ChannelSavedOut:
    """New credentials or another till for this channel; it is unverified until its new KES 1 test
    succeeds (the primary channel's send the business back to onboarding until then)."""
    return _saved(await use_cases.replace_channel(actor, channel_id, body))


@router.patch("/channels/{channel_id}")
async def rename_channel(channel_id: uuid.UUID, body: ChannelNameIn, actor: CurrentActor) -> ChannelViewOut:
    return _view(await use_cases.rename_channel(actor, channel_id, name=body.name))


@router.post("/channels/{channel_id}/verify", status_code=201)
async def verify_channel(channel_id: uuid.UUID, actor: CurrentActor) -> PaymentOut:
    """Send the channel's KES 1 test push to the owner's phone again."""
    return await use_cases.resend_channel_test(actor, channel_id)


@router.post("/channels/{channel_id}/primary")
async def make_primary(channel_id: uuid.UUID, actor: CurrentActor) -> ChannelViewOut:
    """Make a verified channel the primary one: the bot, USSD and the panel's "Request payment" push
    through it from now on. Apps keep the channel each chose."""
    return _view(await use_cases.make_primary(actor, channel_id))

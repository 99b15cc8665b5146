"""A USSD gateway driver: plays Africa's Talking's gateway against OUR ``/ussd`` endpoint (refs §3, §6).

Each hop is one form POST of ``sessionId, serviceCode, phoneNumber, networkCode, text``, where ``text`` is
every input so far joined by ``*`` (``""`` on the first hop). The reply must be HTTP 200 ``text/plain``
starting with ``CON `` or ``END ``, at most ``max_chars`` characters of printable ASCII (plus ``\\n``),
within ``timeout`` seconds; anything else raises :class:`UssdProtocolError` and ends the session as
``Failed``, the way AT's gateway drops it. The driver checks the protocol only: what a screen should say
is for the tests to decide.

    async with UssdGateway(f"{base}/ussd?secret=…") as gateway:
        session = gateway.dial("+254712345678")
        menu = await session.start()
        screen = await session.send("1")     # posts text="1"; a further send("2") posts text="1*2"
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Literal, NoReturn
from zoneinfo import ZoneInfo

import httpx

from sim.africastalking.ids import session_id as new_session_id

logger = logging.getLogger("sim.africastalking.ussd")

EAT = ZoneInfo("Africa/Nairobi")
SESSION_COST = "KES 0.10"
_SNIPPET = 120

EndStatus = Literal["Success", "Incomplete", "Failed"]


class UssdProtocolError(AssertionError):
    """Our app broke the USSD callback protocol (or the session was used after it ended)."""


@dataclass(frozen=True, slots=True)
class UssdScreen:
    kind: Literal["CON", "END"]
    text: str  # without the "CON " / "END " prefix
    raw: str
    status_code: int
    elapsed: float

    @property
    def ended(self) -> bool:
        return self.kind == "END"


def _snippet(text: str) -> str:
    return repr(text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…")


def _bad_char(body: str) -> tuple[int, str] | None:
    for i, ch in enumerate(body):
        if ch != "\n" and not (" " <= ch <= "~"):
            return i, ch
    return None


class UssdGateway:
    """Dials sessions against one callback URL (a query string such as ``?secret=…`` is kept)."""

    def __init__(
        self,
        url: str,
        *,
        service_code: str = "*384*123#",
        network_code: str = "63902",
        max_chars: int = 182,
        timeout: float = 15.0,
        http: httpx.AsyncClient | None = None,
        end_of_session_url: str | None = None,
    ) -> None:
        self.url = url
        self.service_code = service_code
        self.network_code = network_code
        self.max_chars = max_chars
        self.timeout = timeout
        self.end_of_session_url = end_of_session_url
        self.http = http if http is not None else httpx.AsyncClient()
        self._owns_http = http is None
        # End-of-session notifications posted (or attempted) to end_of_session_url, oldest first.
        self.notifications: list[dict[str, str]] = []

    def dial(
        self, msisdn: str, *, session_id: str | None = None, service_code: str | None = None
    ) -> UssdSession:
        return UssdSession(
            self,
            msisdn=msisdn,
            session_id=session_id or new_session_id(),
            service_code=service_code or self.service_code,
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> UssdGateway:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class UssdSession:
    """One dialled session; ``inputs`` accumulate and every hop re-sends them all, as AT does."""

    def __init__(self, gateway: UssdGateway, *, msisdn: str, session_id: str, service_code: str) -> None:
        self.gateway = gateway
        self.session_id = session_id
        self.msisdn = msisdn
        self.service_code = service_code
        self.inputs: list[str] = []
        self.screens: list[UssdScreen] = []
        self.ended = False
        self.status: EndStatus | None = None
        self.error: str | None = None
        self.hops = 0
        # The end-of-session notification fields, built when the session ends (posted if a URL is set).
        self.end_notification: dict[str, str] | None = None
        self._started_at: float | None = None
        self._last_response = ""

    @property
    def text(self) -> str:
        """The ``text`` field the next hop would carry."""
        return "*".join(self.inputs)

    @property
    def screen(self) -> UssdScreen | None:
        return self.screens[-1] if self.screens else None

    async def start(self) -> UssdScreen:
        """The dial itself: the first hop, with ``text=""``."""
        if self.hops:
            raise RuntimeError(f"session {self.session_id} was already started")
        return await self._hop()

    async def send(self, value: str) -> UssdScreen:
        """The user types ``value`` and presses send."""
        if self.ended:
            raise UssdProtocolError(
                f"USSD session {self.session_id}: send({value!r}) after the session ended ({self.status})"
            )
        if not self.hops:
            raise RuntimeError(f"session {self.session_id}: call start() before send()")
        self.inputs.append(value)
        return await self._hop()

    async def abandon(self) -> None:
        """The user cancelled, or let a CON screen time out."""
        if self.ended:
            return
        await self._finish("Incomplete", "")

    # --- internals -----------------------------------------------------------------------------------------

    async def _hop(self) -> UssdScreen:
        gw = self.gateway
        text = self.text
        form = {
            "sessionId": self.session_id,
            "serviceCode": self.service_code,
            "phoneNumber": self.msisdn,
            "networkCode": gw.network_code,
            "text": text,
        }
        if self._started_at is None:
            self._started_at = time.monotonic()
        self.hops += 1
        where = f"USSD session {self.session_id} hop {self.hops} (text={text!r})"
        began = time.monotonic()
        try:
            async with asyncio.timeout(gw.timeout):
                # httpx's own timeout is a backstop; the gateway's deadline is the asyncio one.
                response = await gw.http.post(gw.url, data=form, timeout=gw.timeout + 1.0)
        except (TimeoutError, httpx.TimeoutException):
            await self._fail(f"{where}: no reply within the {gw.timeout:g}s application timeout")
        except httpx.HTTPError as exc:
            await self._fail(f"{where}: request to {gw.url} failed: {type(exc).__name__}: {exc}")
        elapsed = time.monotonic() - began
        body = response.text
        self._last_response = body
        problem = self._problem(response, body, elapsed)
        if problem is not None:
            await self._fail(f"{where}: {problem}")
        kind: Literal["CON", "END"] = "CON" if body.startswith("CON ") else "END"
        screen = UssdScreen(kind, body[4:], body, response.status_code, elapsed)
        self.screens.append(screen)
        if screen.ended:
            await self._finish("Success", "")
        return screen

    def _problem(self, response: httpx.Response, body: str, elapsed: float) -> str | None:
        gw = self.gateway
        if elapsed > gw.timeout:
            return f"reply took {elapsed:.3f}s, over the {gw.timeout:g}s application timeout"
        if response.status_code != 200:
            return f"HTTP {response.status_code} (expected 200); body {_snippet(body)}"
        content_type = response.headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != "text/plain":
            return f"Content-Type {content_type!r} (expected text/plain); body {_snippet(body)}"
        if not body.startswith(("CON ", "END ")):
            return f"reply does not start with 'CON ' or 'END ': {_snippet(body)}"
        if len(body) > gw.max_chars:
            return f"reply is {len(body)} characters, over the {gw.max_chars} limit: {_snippet(body)}"
        bad = _bad_char(body)
        if bad is not None:
            index, ch = bad
            return (
                f"reply has {ch!r} at index {index}; only printable ASCII and '\\n' are safe on handsets: "
                f"{_snippet(body)}"
            )
        return None

    async def _fail(self, message: str) -> NoReturn:
        await self._finish("Failed", message)
        raise UssdProtocolError(message)

    async def _finish(self, status: EndStatus, error: str) -> None:
        self.ended = True
        self.status = status
        self.error = error or None
        started = self._started_at if self._started_at is not None else time.monotonic()
        notification = {
            "date": datetime.now(EAT).strftime("%Y-%m-%d %H:%M:%S"),
            "sessionId": self.session_id,
            "serviceCode": self.service_code,
            "networkCode": self.gateway.network_code,
            "phoneNumber": self.msisdn,
            "status": status,
            "cost": SESSION_COST,
            "durationInMillis": str(int((time.monotonic() - started) * 1000)),
            "hopsCount": str(self.hops),
            "input": self.text,
            "lastAppResponse": self._last_response,
            "errorMessage": error,
        }
        self.end_notification = notification
        url = self.gateway.end_of_session_url
        if url is None:
            return
        self.gateway.notifications.append(notification)
        try:
            await self.gateway.http.post(url, data=notification, timeout=self.gateway.timeout)
        except Exception as exc:
            # AT does not care whether we took the notification; neither does the driver.
            logger.debug("end-of-session notification for %s to %s failed: %s", self.session_id, url, exc)

"""Local Africa's Talking stand-in: the SMS REST API (``create_app`` / ``run``) and a USSD gateway driver
(``UssdGateway``) that calls our own ``/ussd`` endpoint the way AT's gateway does."""

from sim.africastalking.app import STATUS_LABELS, AfricasTalkingSimulator, create_app, run
from sim.africastalking.segments import sms_segments
from sim.africastalking.ussd import UssdGateway, UssdProtocolError, UssdScreen, UssdSession

__all__ = [
    "STATUS_LABELS",
    "AfricasTalkingSimulator",
    "UssdGateway",
    "UssdProtocolError",
    "UssdScreen",
    "UssdSession",
    "create_app",
    "run",
    "sms_segments",
]

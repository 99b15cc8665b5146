"""Local MikroTik RouterOS API stand-in: ``RouterSim`` is one router on one TCP port; ``run`` serves some.

Driven by the real librouteros client; see ``control.create_control_app`` for the HTTP ``/_sim`` routes.
"""

from sim.routeros.control import create_control_app
from sim.routeros.protocol import Command, decode_length, encode_length, encode_sentence, read_sentence
from sim.routeros.server import Call, Fault, RouterSim, run, serve
from sim.routeros.state import RosTrap, RouterState, format_duration, parse_duration

__all__ = [
    "Call",
    "Command",
    "Fault",
    "RosTrap",
    "RouterSim",
    "RouterState",
    "create_control_app",
    "decode_length",
    "encode_length",
    "encode_sentence",
    "format_duration",
    "parse_duration",
    "read_sentence",
    "run",
    "serve",
]

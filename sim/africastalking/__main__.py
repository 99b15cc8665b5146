"""``python -m sim.africastalking [--port 8002] [--dlr-url URL] [--auto-dlr SECONDS]`` serves the SMS API."""

import argparse

from sim.africastalking import run

parser = argparse.ArgumentParser(prog="python -m sim.africastalking", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8002)
parser.add_argument("--api-key", default="sim-at-key", help="the apiKey header value to accept")
parser.add_argument("--username", default="sandbox")
parser.add_argument("--dlr-url", default=None, help="where delivery reports are posted")
parser.add_argument("--auto-dlr", type=float, default=None, help="seconds until an automatic Success report")
args = parser.parse_args()
run(
    args.host,
    args.port,
    api_key=args.api_key,
    username=args.username,
    dlr_url=args.dlr_url,
    auto_dlr=args.auto_dlr,
)

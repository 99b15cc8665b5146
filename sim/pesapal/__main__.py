"""``python -m sim.pesapal [--port 8003] [--consumer-key K] [--consumer-secret S] [--token-ttl SECONDS]``."""

import argparse

from sim.pesapal import run

parser = argparse.ArgumentParser(prog="python -m sim.pesapal", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8003)
parser.add_argument("--consumer-key", default="sim-key")
parser.add_argument("--consumer-secret", default="sim-secret")
parser.add_argument("--token-ttl", type=float, default=300.0, help="seconds a token stays valid")
args = parser.parse_args()
run(
    args.host,
    args.port,
    consumer_key=args.consumer_key,
    consumer_secret=args.consumer_secret,
    token_ttl=args.token_ttl,
)

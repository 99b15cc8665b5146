"""``python -m sim.routeros [--port 8728] [--user admin] [--password x] [--control-port 8730]``."""

import argparse

from sim.routeros import run

parser = argparse.ArgumentParser(prog="python -m sim.routeros", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8728, help="API port of the first router")
parser.add_argument("--user", default="admin", help="API user name")
parser.add_argument("--password", default="", help="API user password")
parser.add_argument("--version", default="7.18.2", help="RouterOS version to play, e.g. 6.49.10")
parser.add_argument("--identity", default="MikroTik")
parser.add_argument("--routers", type=int, default=1, help="routers on consecutive ports")
parser.add_argument("--slow", type=float, default=0.0, help="seconds before every reply")
parser.add_argument("--control-port", type=int, default=None, help="serve the HTTP /_sim control API here")
args = parser.parse_args()
run(
    args.host,
    args.port,
    username=args.user,
    password=args.password,
    version=args.version,
    identity=args.identity,
    routers=args.routers,
    control_port=args.control_port,
    slow=args.slow,
)

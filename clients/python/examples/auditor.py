#!/usr/bin/env python3
"""An example auditor: reads the system risk and the insurance fund with
Merkle proofs at one height, counts the instructions sent to venues over
the blocks before it (liquidations, takeovers...), and checks that the app
hash the figures were read against is the one in the next block's header
(CometBFT RPC).

    python3 examples/auditor.py --grpc 127.0.0.1:26659 --rpc http://127.0.0.1:26657 [--height H]

The signatures on that header and the proofs themselves are checked by
`clearnode audit verify --height H system|fund`, printed at the end. The
last line is `JSON: {...}` for machines.
"""

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from google.protobuf.json_format import MessageToDict  # noqa: E402

from clearnode_client import Node  # noqa: E402


def header_app_hash(rpc: str, height: int, timeout_seconds: float = 15.0) -> str:
    """The app hash in the header of block `height` (which commits state height - 1)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with urllib.request.urlopen(f"{rpc}/commit?height={height}", timeout=5) as response:
                result = json.load(response)["result"]
            return result["signed_header"]["header"]["app_hash"].upper()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def figures(message) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True)


def main():
    parser = argparse.ArgumentParser(description="An example clearnode auditor.")
    parser.add_argument("--grpc", default="127.0.0.1:26659")
    parser.add_argument("--rpc", help="CometBFT RPC, to compare the app hash with the signed header")
    parser.add_argument("--chain-id", default="", help="not needed for reads")
    parser.add_argument("--height", type=int, default=0, help="0 = latest committed")
    parser.add_argument("--history-blocks", type=int, default=50, help="count instructions to venues over this many blocks")
    args = parser.parse_args()

    node = Node(args.grpc, args.chain_id)
    node.wait_ready()
    system = node.system_risk(height=args.height, prove=True)
    height = system.context.height
    fund = node.insurance_fund(height=height, prove=True)
    app_hash = system.context.app_hash.hex().upper()
    assert fund.context.app_hash == system.context.app_hash, "both figures are read at one height"
    aggregate, balance = figures(system.aggregate), figures(fund.fund)
    health = aggregate.get("accounts", {})

    print(f"state height {height}, app hash {app_hash}")
    print(f"system: leverage {system.aggregate.aggregate_leverage}x, net notional {system.aggregate.net_notional} USD, "
          f"equity {system.aggregate.total_equity} USD, accounts {system.aggregate.accounts_total} "
          f"(healthy {health.get('healthy', 0)}, margin call {health.get('margin_call', 0)}, "
          f"liquidating {health.get('liquidating', 0)}, bankrupt {health.get('bankrupt', 0)})")
    print(f"insurance fund: balance {fund.fund.balance} USD, inflows {fund.fund.inflows}, payouts {fund.fund.payouts}")
    print(f"proofs: system {len(system.context.proof)} bytes for key {system.context.key.decode()!r}, "
          f"fund {len(fund.context.proof)} bytes for key {fund.context.key.decode()!r}")
    first = max(1, height - args.history_blocks + 1)
    recent = {}
    for instruction in node.history(from_height=first, to_height=height):
        recent[instruction.kind] = recent.get(instruction.kind, 0) + 1
    print(f"instructions to venues in blocks {first}..{height}: " + (", ".join(f"{k} {n}" for k, n in sorted(recent.items())) or "none"))
    matches = None
    if args.rpc:
        header = header_app_hash(args.rpc.rstrip("/"), height + 1)
        matches = header == app_hash
        print(f"header {height + 1} app hash {header}: {'matches' if matches else 'DOES NOT MATCH'}")
    verify = [f"clearnode audit verify --height {height} system", f"clearnode audit verify --height {height} fund"]
    print("prove the signatures and the proofs with:\n  " + "\n  ".join(verify))
    print("JSON: " + json.dumps({
        "height": height,
        "app_hash": app_hash,
        "system": aggregate,
        "fund": balance,
        "proof_bytes": {"system": len(system.context.proof), "fund": len(fund.context.proof)},
        "instructions": {"from_height": first, "to_height": height, "by_kind": recent},
        "header_app_hash_matches": matches,
        "verify": verify,
    }, sort_keys=True))
    return 0 if matches in (None, True) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""An example venue integrating with clearnode.

It does what a venue does, in order:
  1. (devnet only) funds its demo traders through the custodian key and has
     each trader authorize the venue (a trader signs that with its own key);
  2. before accepting each trader's order, asks the margin passport how much
     more the trader may take, and caps the order at that;
  3. reports its traders' positions in one signed batch per round;
  4. follows its instruction stream (margin calls, liquidations, takeovers,
     backstop, ADL) from where it stopped last time, acting on each exactly
     once, and acknowledges what it acted on (a venue that leaves
     liquidation, takeover, backstop or ADL instructions unacknowledged for
     instruction_ack_blocks becomes delinquent: its reports are refused).

    python3 examples/venue.py --grpc 127.0.0.1:26659 --chain-id clearnode-devnet \\
        --venue-id venue-a --venue-key .devnet/keys/venue-a.json \\
        --custodian-key .devnet/keys/custodian.json --traders 4 --rounds 3 --follow-seconds 30

Each line it prints starts with what happened; the last line is `summary: {json}`.
"""

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clearnode_client import Key, Node  # noqa: E402
from clearnode_client.node import INSUFFICIENT_INITIAL_MARGIN, REDUCE_ONLY  # noqa: E402

MARKET = "BTC-PERP"


def parse_args():
    parser = argparse.ArgumentParser(description="An example clearnode venue.")
    parser.add_argument("--grpc", default="127.0.0.1:26659", help="the node's gRPC address")
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--venue-id", required=True)
    parser.add_argument("--venue-key", required=True, help="the venue's key file (JSON with secret_key)")
    parser.add_argument("--custodian-key", help="devnet faucet: fund the demo traders with this custodian key")
    parser.add_argument("--traders", type=int, default=4)
    parser.add_argument("--deposit", default="10000", help="USDC each demo trader starts with")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of orders and reports")
    parser.add_argument("--follow-seconds", type=float, default=30.0, help="how long to follow instructions")
    parser.add_argument("--until-kind", help="stop following once an instruction of this kind arrives")
    parser.add_argument("--state-file", default="venue-state.json", help="where the last handled instruction is kept")
    return parser.parse_args()


def say(what, **details):
    print(f"{what}: {json.dumps(details, sort_keys=True)}", flush=True)


def onboard(node, args, traders):
    """Devnet only: the custodian credits each trader, and each trader authorizes the venue."""
    custodian = Key.from_file(args.custodian_key)
    for trader in traders:
        try:
            node.account_risk(trader.address)
            continue  # Already funded on an earlier run.
        except Exception:
            pass
        reference = f"{args.venue_id}-faucet-{trader.address.hex()}"
        deposit = node.deposit(custodian, trader.address, "USDC", args.deposit, reference)
        authorize = node.authorize_venue(trader, args.venue_id)
        say("onboarded", trader=trader.address.hex(), deposit_code=deposit.code, authorize_code=authorize.code, height=authorize.height)


def accept_orders(node, args, traders, held, oracle):
    """One round: trader i wants long BTC of (2 + 4 i) x its deposit; each order is capped by the passport."""
    entries = []
    for index, trader in enumerate(traders):
        target = Decimal(args.deposit) * (2 + 4 * index) / oracle
        wanted = target / args.rounds
        passport = node.passport(trader.address, args.venue_id)
        allowance = next((m for m in passport.markets if m.market == MARKET), None)
        room = Decimal(allowance.max_long) if allowance else Decimal(0)
        accepted = min(wanted, room).quantize(Decimal("0.001"), rounding="ROUND_DOWN")
        say("passport", trader=trader.address.hex(), height=passport.height, free_collateral=passport.free_collateral,
            max_long=allowance.max_long if allowance else "0", order=str(wanted.quantize(Decimal("0.001"))), accepted=str(accepted))
        if accepted > 0:
            held[trader.address] = held.get(trader.address, Decimal(0)) + accepted
        entries.append((trader.address, MARKET, held.get(trader.address, Decimal(0)), oracle))
    return entries


def report(node, args, venue_key, entries):
    """Reports the batch; when the clearinghouse refuses new risk, reports trader by trader."""
    response = node.report(venue_key, args.venue_id, entries)
    say("reported", entries=len(entries), code=response.code, height=response.height, committed=response.committed)
    if response.code in (REDUCE_ONLY, INSUFFICIENT_INITIAL_MARGIN):
        for entry in entries:
            single = node.report(venue_key, args.venue_id, [entry])
            say("reported", entries=1, trader=entry[0].hex(), code=single.code, height=single.height, committed=single.committed)
    return response


def acknowledge(node, args, venue_key, height, acked):
    """Acknowledges every instruction up to `height` once acted on (if that is news)."""
    if height <= acked:
        return acked
    response = node.acknowledge(venue_key, args.venue_id, height)
    say("acknowledged", height=height, code=response.code, committed=response.committed)
    return height if response.committed else acked


def follow(node, args, venue_key, state_path):
    """Follows the instruction stream, resuming after the last handled (height, index)."""
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    last = tuple(state.get("last_seen", (0, -1)))
    acked = state.get("acknowledged", 0)
    counts = {}
    for instruction in node.instructions(args.venue_id, from_height=max(last[0], 1), timeout_seconds=args.follow_seconds):
        position = (instruction.height, instruction.index)
        if position <= last:
            continue  # Handled before the restart.
        # Heights arrive whole and in order: everything before this one is handled.
        acked = acknowledge(node, args, venue_key, instruction.height - 1, acked)
        # A real venue acts here: restrict the account, cancel orders, hand over the position...
        say("instruction", height=instruction.height, index=instruction.index, kind=instruction.kind,
            account=instruction.account.hex(), market=instruction.market, quantity=instruction.quantity, price=instruction.price)
        counts[instruction.kind] = counts.get(instruction.kind, 0) + 1
        last = position
        state_path.write_text(json.dumps({"last_seen": list(last), "acknowledged": acked}))
        if args.until_kind and instruction.kind == args.until_kind:
            break
    acked = acknowledge(node, args, venue_key, node.caught_up_height(args.venue_id, last), acked)
    state_path.write_text(json.dumps({"last_seen": list(last), "acknowledged": acked}))
    return counts, last


def main():
    args = parse_args()
    node = Node(args.grpc, args.chain_id)
    height = node.wait_ready()
    venue_key = Key.from_file(args.venue_key)
    traders = [Key.from_label(f"{args.chain_id}/{args.venue_id}/trader-{i}") for i in range(args.traders)]
    say("connected", grpc=args.grpc, height=height, venue=args.venue_id, traders=len(traders))
    if args.custodian_key:
        onboard(node, args, traders)
    held = {}
    committed = 0
    for _ in range(args.rounds):
        oracle = Decimal(node.market_risk(MARKET).aggregate.oracle_price)
        entries = accept_orders(node, args, traders, held, oracle)
        committed += report(node, args, venue_key, entries).committed
    counts, last = follow(node, args, venue_key, Path(args.state_file))
    say("summary", venue=args.venue_id, traders=[t.address.hex() for t in traders], reports_committed=committed,
        instructions=counts, last_seen=list(last))


if __name__ == "__main__":
    main()

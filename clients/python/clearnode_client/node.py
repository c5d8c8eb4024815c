"""A clearnode node over gRPC: submit signed transactions, read audited
figures, ask margin passports, follow a venue's instruction stream."""

import time
from decimal import Decimal

import grpc  # Debian: python3-grpcio

from . import proto

# Codes with which the clearinghouse refuses new risk of an account (docs/transactions.md).
REDUCE_ONLY = 308
INSUFFICIENT_INITIAL_MARGIN = 309


class NodeError(Exception):
    """A transaction refused before CheckTx, or a failed call.

    `code` is the clearnode rejection code (101-111, from the `clearnode-code`
    metadata) when there is one, else None; `status` is the gRPC status code.
    """

    def __init__(self, status, message, code=None):
        super().__init__(f"{status.name}: {message}" + (f" (clearnode code {code})" if code else ""))
        self.status = status
        self.code = code


def decimal_text(value, places=9) -> str:
    """A decimal as the node parses it: plain digits, at most `places` decimals."""
    quantized = Decimal(value).quantize(Decimal(1).scaleb(-places))
    text = format(quantized, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _target(url: str) -> str:
    for scheme in ("http://", "https://"):
        if url.startswith(scheme):
            return url[len(scheme):]
    return url


class Node:
    """A connection to one node's gRPC endpoint (e.g. "127.0.0.1:26659")."""

    def __init__(self, url: str, chain_id: str, timeout_seconds: float = 45.0):
        self.pb = proto.load()
        self.chain_id = chain_id
        self.timeout = timeout_seconds
        self.channel = grpc.insecure_channel(_target(url))
        self.audit = self.pb.audit_grpc.AuditServiceStub(self.channel)
        self.venue = self.pb.venue_grpc.VenueServiceStub(self.channel)
        self.accounts = self.pb.venue_grpc.AccountServiceStub(self.channel)
        self.custodian = self.pb.venue_grpc.CustodianServiceStub(self.channel)

    def _call(self, method, request, **kwargs):
        try:
            return method(request, timeout=self.timeout, **kwargs)
        except grpc.RpcError as error:
            metadata = dict(error.trailing_metadata() or ())
            code = metadata.get("clearnode-code")
            raise NodeError(error.code(), error.details(), int(code) if code else None) from None

    def wait_ready(self, timeout_seconds: float = 120.0) -> int:
        """Waits until the node answers with a committed block; returns its height."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                return self.system_risk().context.height
            except NodeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # Transactions.

    def next_sequence(self, key) -> int:
        request = self.pb.audit.GetSequenceRequest(public_key=key.public_key)
        return self._call(self.audit.GetSequence, request).next

    def sign(self, key, sequence: int, **action) -> bytes:
        """Encodes TxBody{chain_id, sequence, <one action>} and signs it."""
        body = self.pb.tx.TxBody(chain_id=self.chain_id, sequence=sequence, **action)
        return key.sign_tx(self.pb.tx, body)

    def _submit(self, method, key, wait: bool, sequence, **action):
        sequence = self.next_sequence(key) if sequence is None else sequence
        request = self.pb.venue.SubmitTxRequest(tx=self.sign(key, sequence, **action), wait_for_commit=wait)
        return self._call(method, request)

    def deposit(self, custodian_key, account: bytes, asset: str, amount, reference: str, wait=True, sequence=None):
        """Credits collateral that reached the custodian (signed by the custodian)."""
        action = self.pb.tx.DepositCollateral(account=account, asset=asset, amount=decimal_text(amount), reference=reference)
        return self._submit(self.custodian.SubmitDeposit, custodian_key, wait, sequence, deposit_collateral=action)

    def authorize_venue(self, account_key, venue_id: str, authorized=True, wait=True, sequence=None):
        """The account lets `venue_id` report positions for it (signed by the account)."""
        action = self.pb.tx.AuthorizeVenue(venue_id=venue_id, authorized=authorized)
        return self._submit(self.accounts.SubmitAccountTx, account_key, wait, sequence, authorize_venue=action)

    def report(self, venue_key, venue_id: str, entries, wait=True, sequence=None, acknowledged_height=0):
        """A venue's batch of position snapshots: entries of (address, market, size, entry_price).

        Each entry replaces that account's position in that market on this venue;
        size 0 closes it. All entries apply or none (see SubmitTxResponse.code).
        `acknowledged_height` > 0 also acknowledges every instruction up to that height.
        """
        pb_entries = [
            self.pb.tx.PositionEntry(account=account, market=market, size=decimal_text(size), entry_price=decimal_text(price))
            for account, market, size, price in entries
        ]
        action = self.pb.tx.PositionReport(venue_id=venue_id, entries=pb_entries, acknowledged_height=acknowledged_height)
        return self._submit(self.venue.SubmitReport, venue_key, wait, sequence, position_report=action)

    def acknowledge(self, venue_key, venue_id: str, height: int, wait=True, sequence=None):
        """The venue has acted on every instruction for it up to and including `height`
        (at most the last committed height): a report with no entries."""
        return self.report(venue_key, venue_id, [], wait=wait, sequence=sequence, acknowledged_height=height)

    def caught_up_height(self, venue_id: str, last_seen) -> int:
        """The highest height up to which the venue has seen every instruction,
        given the (height, index) of the last one it handled: the committed
        height when nothing came after it, else the height before the next one."""
        request = self.pb.audit.ListInstructionsRequest(venue_id=venue_id, from_height=max(last_seen[0], 1), limit=1000)
        page = self._call(self.audit.ListInstructions, request)
        later = [i.height for i in page.instructions if (i.height, i.index) > tuple(last_seen)]
        return min(later) - 1 if later else page.context.height

    # Reads: every answer names the height and app hash it was read at.

    def system_risk(self, height=0, prove=False):
        return self._call(self.audit.GetSystemRisk, self.pb.audit.GetSystemRiskRequest(height=height, prove=prove))

    def market_risk(self, market: str, height=0, prove=False):
        request = self.pb.audit.GetMarketRiskRequest(market=market, height=height, prove=prove)
        return self._call(self.audit.GetMarketRisk, request)

    def insurance_fund(self, height=0, prove=False):
        return self._call(self.audit.GetInsuranceFund, self.pb.audit.GetInsuranceFundRequest(height=height, prove=prove))

    def account_risk(self, account: bytes, height=0, prove=False):
        request = self.pb.audit.GetAccountRiskRequest(account=account, height=height, prove=prove)
        return self._call(self.audit.GetAccountRisk, request)

    def history(self, venue_id="", kinds=(), from_height=0, to_height=0, page_size=500):
        """Instructions issued to venues over a height range (AuditService.ListInstructions),
        in (height, venue, index) order, fetched page by page. A generator of Instruction."""
        request = self.pb.audit.ListInstructionsRequest(
            venue_id=venue_id, kinds=list(kinds), from_height=from_height, to_height=to_height, limit=page_size
        )
        while True:
            page = self._call(self.audit.ListInstructions, request)
            yield from page.instructions
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def passport(self, account: bytes, venue_id: str):
        """Before accepting an order: free collateral and the largest additions per market."""
        request = self.pb.venue.GetMarginPassportRequest(account=account, venue_id=venue_id)
        return self._call(self.venue.GetMarginPassport, request)

    def instructions(self, venue_id: str, from_height: int, timeout_seconds=None):
        """The venue's instructions from `from_height` on, in block order, then live.

        A generator of clearnode.state.v1.Instruction; it ends (without error)
        when `timeout_seconds` pass.
        """
        request = self.pb.venue.StreamInstructionsRequest(venue_id=venue_id, from_height=from_height)
        stream = self.venue.StreamInstructions(request, timeout=timeout_seconds)
        try:
            yield from stream
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise NodeError(error.code(), error.details()) from None
        finally:
            stream.cancel()

"""A small Python client of a clearnode node (gRPC).

    from clearnode_client import Key, Node

`Key` signs transactions exactly as the node verifies them (ed25519 over
b"clearnode/tx/v1\\n" + body); `Node` submits them and reads the audit,
passport and instruction services. The gRPC stubs are generated from the
repository's protos on first use (see generate.py).
"""

from .keys import Key, address_of

__all__ = ["Key", "Node", "NodeError", "address_of"]


def __getattr__(name):
    # The node module needs the generated stubs: import it only when asked.
    if name in ("Node", "NodeError"):
        from . import node

        return getattr(node, name)
    raise AttributeError(name)

#!/usr/bin/env python3
"""Generates the Python gRPC stubs of clearnode from the repository's protos.

    python3 clients/python/generate.py [--out DIR]

Uses grpcio-tools (Debian: python3-grpc-tools). The stubs land in
clearnode_client/_generated/ (or DIR, or $CLEARNODE_PY_GENERATED), as the
packages clearnode.tx.v1, clearnode.state.v1, clearnode.venue.v1 and
clearnode.audit.v1. `import clearnode_client` runs this on first use when
the stubs are missing or older than a proto file.
"""

import argparse
import sys

from clearnode_client import proto


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the generated packages")
    args = parser.parse_args()
    out = proto.generate(args.out)
    print(f"generated clearnode stubs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

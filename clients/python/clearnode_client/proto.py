"""The generated protobuf and gRPC modules, generated on first use.

The stubs are generated with grpcio-tools from the repository's proto/
directory into clearnode_client/_generated/ (or $CLEARNODE_PY_GENERATED),
which is then put on sys.path so that the generated modules' own imports
(`from clearnode.state.v1 import state_pb2`) resolve.
"""

import importlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

PACKAGE_DIR = Path(__file__).resolve().parent
PROTO_ROOT = PACKAGE_DIR.parents[2] / "proto"
# Every proto of the repository, so a new file (imported by another) is
# never missing from the generated package.
PROTO_FILES = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.glob("clearnode/**/*.proto"))


def output_dir(out=None) -> Path:
    """Where the stubs are (or go)."""
    chosen = out or os.environ.get("CLEARNODE_PY_GENERATED")
    return Path(chosen).resolve() if chosen else PACKAGE_DIR / "_generated"


def generate(out=None) -> Path:
    """Runs grpc_tools.protoc over the repository's protos; returns the output dir."""
    from grpc_tools import protoc  # Debian: python3-grpc-tools

    target = output_dir(out)
    target.mkdir(parents=True, exist_ok=True)
    args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={target}", f"--grpc_python_out={target}"]
    if protoc.main(args + PROTO_FILES) != 0:
        raise RuntimeError(f"protoc failed on {PROTO_ROOT}")
    # Regular packages, so that nothing else named `clearnode` shadows them.
    for proto in PROTO_FILES:
        package = target
        for part in Path(proto).parent.parts:
            package = package / part
            (package / "__init__.py").touch()
    (target / "STAMP").write_text("generated from " + str(PROTO_ROOT) + "\n")
    return target


def _stale(target: Path) -> bool:
    stamp = target / "STAMP"
    if not stamp.exists():
        return True
    if not PROTO_ROOT.exists():
        return False  # An installed copy without the repository: use what is there.
    built = stamp.stat().st_mtime
    return any((PROTO_ROOT / proto).stat().st_mtime > built for proto in PROTO_FILES)


def load() -> SimpleNamespace:
    """The generated modules: tx, state, governance, venue, venue_grpc, audit, audit_grpc."""
    target = output_dir()
    if _stale(target):
        generate()
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    module = importlib.import_module
    return SimpleNamespace(
        tx=module("clearnode.tx.v1.tx_pb2"),
        state=module("clearnode.state.v1.state_pb2"),
        governance=module("clearnode.state.v1.governance_pb2"),
        venue=module("clearnode.venue.v1.venue_pb2"),
        venue_grpc=module("clearnode.venue.v1.venue_pb2_grpc"),
        audit=module("clearnode.audit.v1.audit_pb2"),
        audit_grpc=module("clearnode.audit.v1.audit_pb2_grpc"),
    )

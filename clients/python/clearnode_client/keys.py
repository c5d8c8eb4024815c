"""ed25519 keys, addresses and transaction signing, as crates/types does it.

- address = the first 20 bytes of sha256(public key);
- a transaction is Tx{body, signer_public_key, signature} where body is the
  encoded TxBody{chain_id, sequence, action} and the signature is ed25519
  over b"clearnode/tx/v1\\n" + body (the body bytes exactly as sent).
"""

import hashlib
import json
from pathlib import Path

import nacl.signing  # Debian: python3-nacl

SIGN_DOMAIN = b"clearnode/tx/v1\n"
ADDRESS_BYTES = 20


def address_of(public_key: bytes) -> bytes:
    """The 20-byte account address of a 32-byte ed25519 public key."""
    if len(public_key) != 32:
        raise ValueError("an ed25519 public key is 32 bytes")
    return hashlib.sha256(public_key).digest()[:ADDRESS_BYTES]


def sign_bytes(body: bytes) -> bytes:
    """The bytes an ed25519 signature covers."""
    return SIGN_DOMAIN + body


class Key:
    """An ed25519 signing key (a 32-byte seed)."""

    def __init__(self, seed: bytes):
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        self._signing = nacl.signing.SigningKey(seed)

    @classmethod
    def from_file(cls, path) -> "Key":
        """A key file as `clearnode keys generate` writes it (JSON, `secret_key` hex)."""
        data = json.loads(Path(path).read_text())
        return cls(bytes.fromhex(data["secret_key"]))

    @classmethod
    def from_label(cls, label: str) -> "Key":
        """A deterministic key: the seed is sha256(label). For demos and tests only."""
        return cls(hashlib.sha256(label.encode()).digest())

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing.verify_key)

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message).signature

    def sign_tx(self, tx_module, body) -> bytes:
        """Encodes `body` (a TxBody), signs it and returns the encoded Tx."""
        body_bytes = body.SerializeToString()
        envelope = tx_module.Tx(
            body=body_bytes,
            signer_public_key=self.public_key,
            signature=self.sign(sign_bytes(body_bytes)),
        )
        return envelope.SerializeToString()

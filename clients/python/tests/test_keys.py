"""Signing and addresses match crates/types (run: python3 -m unittest discover clients/python/tests)."""

import hashlib
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nacl.signing  # noqa: E402

from clearnode_client.keys import Key, address_of, sign_bytes  # noqa: E402
from clearnode_client.node import decimal_text  # noqa: E402


class KeysMatchTheNode(unittest.TestCase):
    def test_the_address_is_the_first_20_bytes_of_sha256_of_the_public_key(self):
        # A key file written by `clearnode init` (public_key, address).
        public_key = bytes.fromhex("d5392bdb6d85023add319fa416ab065abd36037e1c075393f3a3fe4cedbb29a3")
        self.assertEqual(address_of(public_key).hex(), "5fce4795e93c807e47eb5104c206fbfb3ca2f77d")

    def test_a_key_file_seed_gives_its_public_key_and_address(self):
        key = Key(bytes.fromhex("4a98bc44f35ab9b4798e25a888c61162186fd9c34648bce41b501991e88e3941"))
        self.assertEqual(key.public_key.hex(), "d5392bdb6d85023add319fa416ab065abd36037e1c075393f3a3fe4cedbb29a3")
        self.assertEqual(key.address.hex(), "5fce4795e93c807e47eb5104c206fbfb3ca2f77d")

    def test_the_signature_covers_the_domain_then_the_body_bytes(self):
        key = Key.from_label("test")
        self.assertEqual(key.public_key, bytes(nacl.signing.SigningKey(hashlib.sha256(b"test").digest()).verify_key))
        body = b"\x0a\x03abc"
        signature = key.sign(sign_bytes(body))
        nacl.signing.VerifyKey(key.public_key).verify(b"clearnode/tx/v1\n" + body, signature)

    def test_decimals_are_written_as_the_node_parses_them(self):
        self.assertEqual(decimal_text("1.500"), "1.5")
        self.assertEqual(decimal_text("-0.0000000001"), "0")
        self.assertEqual(decimal_text(64000), "64000")
        self.assertEqual(decimal_text("0.1234567891"), "0.123456789")


if __name__ == "__main__":
    unittest.main()

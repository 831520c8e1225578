"""Secrets sealed at rest: AES-256-GCM under a keyring, with the key id in every sealed value.

A keyring is an ordered list of 32-byte keys, the first one primary. A value is sealed into a
*box* holding one envelope per key of the sealer's keyring, each
``key id | nonce | length | AES-GCM ciphertext and tag``: any process that holds any one of
those keys can open it. That is what lets a key be rotated under a running deployment: the
new keyring is ``[new, old]``, every box is re-sealed under both, and processes that still hold
only the old key keep reading (see :mod:`dispatcher.store.sealing` and the README).

Each envelope is bound to its *context* (what the value is, e.g. ``instance-token:1001``) as
associated data: a box copied into another row does not open there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import struct
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dispatcher.errors import ConfigError

SETTING = "DISPATCHER_SECRET_KEY"
KEY_BYTES = 32
"""AES-256."""
KEY_ID_BYTES = 8
NONCE_BYTES = 12
"""Random per envelope: safe far beyond the few thousand values a deployment seals."""
FORMAT = 1
"""The box format's version, its first byte."""
_ENVELOPE_HEAD = struct.Struct(f">{KEY_ID_BYTES}s{NONCE_BYTES}sI")
_MAX_ENVELOPES = 16


class SecretKeyError(ConfigError):
    """A sealed secret cannot be opened with the keyring at hand (wrong or missing key, or a
    damaged value). Names the key ids involved, never a key or a secret."""

    def __init__(self, problem: str) -> None:
        super().__init__(SETTING, problem)


def key_id(key: bytes) -> str:
    """The public name of a key: 16 hex digits of a hash, stored in each envelope."""
    return hashlib.sha256(b"dispatcher-secret-key-id\x00" + key).digest()[:KEY_ID_BYTES].hex()


def generate_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def encode_key(key: bytes) -> str:
    """The key as written in ``DISPATCHER_SECRET_KEY`` and the key file: urlsafe base64."""
    return base64.urlsafe_b64encode(key).decode("ascii")


def decode_key(text: str, *, where: str = SETTING) -> bytes:
    """One key from its urlsafe base64 form (standard base64 is accepted too)."""
    cleaned = text.strip().translate(str.maketrans("+/", "-_"))
    try:
        key = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(where, "not base64: expected 32 random bytes in urlsafe base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(
            where, f"a key is {len(key)} bytes; expected {KEY_BYTES} bytes in urlsafe base64"
        )
    return key


class Keyring:
    """Keys, primary first; seals under all of them, opens with whichever a box names."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigError(SETTING, "a keyring needs at least one key")
        ids = [key_id(k) for k in keys]
        if any(len(k) != KEY_BYTES for k in keys):
            raise ConfigError(SETTING, f"every key must be {KEY_BYTES} bytes")
        if len(set(ids)) != len(ids):
            raise ConfigError(SETTING, "the same key is listed twice")
        if len(keys) > _MAX_ENVELOPES:
            raise ConfigError(SETTING, f"at most {_MAX_ENVELOPES} keys")
        self._keys = tuple(bytes(k) for k in keys)

    @classmethod
    def parse(cls, text: str, *, where: str = SETTING) -> Keyring:
        """Keys separated by commas or whitespace (one per line in the key file), primary first."""
        parts = [p for p in text.replace(",", " ").split() if p]
        if not parts:
            raise ConfigError(where, "empty: expected at least one key")
        return cls([decode_key(p, where=where) for p in parts])

    @classmethod
    def generate(cls) -> Keyring:
        return cls([generate_key()])

    def encode(self) -> str:
        """The keyring's text form (the key file's content): one key a line, primary first."""
        return "".join(f"{encode_key(k)}\n" for k in self._keys)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id(k) for k in self._keys)

    @property
    def primary(self) -> bytes:
        return self._keys[0]

    def with_primary(self, key: bytes) -> Keyring:
        """A new primary key ahead of the current ones (which stay readable)."""
        return Keyring([key, *(k for k in self._keys if k != key)])

    def primary_only(self) -> Keyring:
        return Keyring([self._keys[0]])

    def __repr__(self) -> str:
        return f"Keyring(ids={list(self.ids)})"

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """A box of ``plaintext`` under every key of the keyring."""
        aad = context.encode()
        parts = [bytes([FORMAT, len(self._keys)])]
        for key in self._keys:
            nonce = secrets.token_bytes(NONCE_BYTES)
            sealed = AESGCM(key).encrypt(nonce, plaintext, aad)
            kid = bytes.fromhex(key_id(key))
            parts.append(_ENVELOPE_HEAD.pack(kid, nonce, len(sealed)) + sealed)
        return b"".join(parts)

    def open(self, box: bytes, context: str) -> bytes:
        """The plaintext of a box; :class:`SecretKeyError` if no key of ours opens it."""
        envelopes = _envelopes(box, context)
        mine = {key_id(k): k for k in self._keys}
        for kid, nonce, sealed in envelopes:
            key = mine.get(kid)
            if key is None:
                continue
            try:
                return AESGCM(key).decrypt(nonce, sealed, context.encode())
            except InvalidTag:
                raise SecretKeyError(
                    f"{context} does not open under key {kid}: the value was altered or moved"
                ) from None
        found = ", ".join(kid for kid, _, _ in envelopes)
        raise SecretKeyError(
            f"{context} is sealed under key(s) {found}, not in this keyring "
            f"({', '.join(self.ids)}): is this the deployment's key?"
        )

    def can_open(self, box: bytes, context: str = "a sealed value") -> bool:
        """Whether the box names a key of this keyring (without decrypting it)."""
        return bool(set(box_key_ids(box, context)) & set(self.ids))


def box_key_ids(box: bytes, context: str = "a sealed value") -> list[str]:
    """The ids of the keys a box is sealed under."""
    return [kid for kid, _, _ in _envelopes(box, context)]


def _envelopes(box: bytes, context: str) -> list[tuple[str, bytes, bytes]]:
    data = bytes(box)
    if len(data) < 2 or data[0] != FORMAT:
        raise SecretKeyError(f"{context} is not a sealed value of format {FORMAT}")
    found: list[tuple[str, bytes, bytes]] = []
    offset = 2
    for _ in range(data[1]):
        if offset + _ENVELOPE_HEAD.size > len(data):
            raise SecretKeyError(f"{context}: sealed value is truncated")
        kid, nonce, length = _ENVELOPE_HEAD.unpack_from(data, offset)
        offset += _ENVELOPE_HEAD.size
        if offset + length > len(data):
            raise SecretKeyError(f"{context}: sealed value is truncated")
        found.append((kid.hex(), nonce, data[offset : offset + length]))
        offset += length
    if offset != len(data) or not found:
        raise SecretKeyError(f"{context}: sealed value is malformed")
    return found

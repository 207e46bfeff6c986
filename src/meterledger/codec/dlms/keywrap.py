"""Key transfer for Security setup (class_id 64), method 2 ``global_key_transfer``
(``key_transfer`` in later versions): new keys wrapped with the master key (KEK) by the
AES key wrap of RFC 3394 (the key transport of security suite 0, Green Book 9.2.7).

The method parameter (Blue Book, Security setup interface class)::

    array key_transfer_data
    key_transfer_data ::= structure { key_id: enum, key_wrapped: octet-string }

Which keys to send, and the new key material itself, are the caller's: nothing here draws
randomness.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from meterledger.codec.dlms.data import Data, DataType
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError, SecurityError

__all__ = [
    "KeyId",
    "WrappedKey",
    "key_transfer_data",
    "parse_key_transfer",
    "unwrap_key",
    "unwrap_key_transfer",
    "wrap_key",
    "wrap_keys",
]

_KEK_LENGTHS = frozenset({16, 24, 32})
_MIN_KEY = 16  # RFC 3394 wraps n >= 2 64-bit blocks
_SEMIBLOCK = 8


class KeyId(enum.IntEnum):
    """``key_id`` of key_transfer_data (Blue Book, Security setup, method 2)."""

    GLOBAL_UNICAST_ENCRYPTION = 0
    GLOBAL_BROADCAST_ENCRYPTION = 1
    AUTHENTICATION = 2
    MASTER = 3  # the KEK itself


_KEY_IDS = frozenset(int(member) for member in KeyId)


def _check_kek(kek: bytes) -> bytes:
    if len(kek) not in _KEK_LENGTHS:
        raise DlmsLocalError(f"a KEK is an AES key of 16, 24 or 32 octets, not {len(kek)}")
    return bytes(kek)


def _wrapped_problem(wrapped: bytes) -> str | None:
    if len(wrapped) >= _MIN_KEY + _SEMIBLOCK and len(wrapped) % _SEMIBLOCK == 0:
        return None
    return f"a wrapped key is a multiple of 8 octets, at least 24; got {len(wrapped)}"


def wrap_key(kek: bytes, key: bytes) -> bytes:
    """RFC 3394 AES key wrap of ``key`` (a multiple of 8 octets, at least 16) with ``kek``."""
    if len(key) < _MIN_KEY or len(key) % _SEMIBLOCK:
        raise DlmsLocalError(f"RFC 3394 wraps keys of 8n octets, n >= 2; got {len(key)}")
    return aes_key_wrap(_check_kek(kek), bytes(key))


def unwrap_key(kek: bytes, wrapped: bytes) -> bytes:
    """The key inside ``wrapped``; SecurityError when its integrity check fails (wrong KEK
    or altered data), DecodeError when it cannot be a wrapped key at all."""
    problem = _wrapped_problem(wrapped)
    if problem is not None:
        raise DecodeError(problem)
    try:
        return aes_key_unwrap(_check_kek(kek), bytes(wrapped))
    except InvalidUnwrap:
        raise SecurityError("wrapped key fails its integrity check (wrong KEK?)") from None


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """One key_transfer_data entry."""

    key_id: KeyId
    wrapped: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, KeyId):
            raise DlmsLocalError(f"key_id {self.key_id!r} is not a KeyId")
        problem = _wrapped_problem(self.wrapped)
        if problem is not None:
            raise DlmsLocalError(problem)


def wrap_keys(kek: bytes, keys: Iterable[tuple[KeyId, bytes]]) -> tuple[WrappedKey, ...]:
    """Wrap each new key with ``kek`` (the current master key)."""
    return tuple(WrappedKey(KeyId(key_id), wrap_key(kek, key)) for key_id, key in keys)


def key_transfer_data(entries: Iterable[WrappedKey]) -> Data:
    """The method parameter: ``array of structure {enum key_id, octet-string}``."""
    items = tuple(
        Data.structure(Data.enum(int(entry.key_id)), Data.octets(entry.wrapped))
        for entry in entries
    )
    if not items:
        raise DlmsLocalError("a key transfer names at least one key")
    return Data.array(*items)


def parse_key_transfer(parameter: Data) -> tuple[WrappedKey, ...]:
    """Read the method parameter (as a server receives it); DecodeError on a wrong shape,
    an unknown key_id, a key named twice or a value that cannot be a wrapped key."""
    if parameter.type is not DataType.ARRAY or not isinstance(parameter.value, tuple):
        raise DecodeError(f"key transfer parameter is {parameter.type.name}, not an array")
    if not parameter.value:
        raise DecodeError("key transfer parameter names no key")
    entries: list[WrappedKey] = []
    seen: set[KeyId] = set()
    for item in parameter.value:
        if not (
            isinstance(item, Data)
            and item.type is DataType.STRUCTURE
            and isinstance(item.value, tuple)
            and len(item.value) == 2
        ):
            raise DecodeError("key_transfer_data is a structure of two elements")
        key_id, wrapped = item.value
        if not (isinstance(key_id, Data) and key_id.type is DataType.ENUM):
            raise DecodeError("key_id is an enum")
        if not (isinstance(wrapped, Data) and wrapped.type is DataType.OCTET_STRING):
            raise DecodeError("key_wrapped is an octet-string")
        if not isinstance(key_id.value, int) or key_id.value not in _KEY_IDS:
            raise DecodeError(f"unknown key_id {key_id.value!r}")
        ident = KeyId(key_id.value)
        if not isinstance(wrapped.value, bytes):
            raise DecodeError("key_wrapped does not hold octets")
        problem = _wrapped_problem(wrapped.value)
        if problem is not None:
            raise DecodeError(problem)
        if ident in seen:
            raise DecodeError(f"{ident.name} is transferred twice")
        seen.add(ident)
        entries.append(WrappedKey(ident, wrapped.value))
    return tuple(entries)


def unwrap_key_transfer(kek: bytes, parameter: Data) -> dict[KeyId, bytes]:
    """Parse and unwrap every key; all or nothing (one bad entry fails the transfer)."""
    return {entry.key_id: unwrap_key(kek, entry.wrapped) for entry in parse_key_transfer(parameter)}

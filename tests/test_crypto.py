"""Sealing secrets at rest: AES-GCM boxes that name their keys and open in their row only."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.crypto import (
    SETTING,
    Keyring,
    SecretKeyError,
    box_key_ids,
    encode_key,
    generate_key,
)
from dispatcher.errors import ConfigError

OLD = Keyring([generate_key()])
NEW = Keyring([generate_key()])


@given(st.binary(max_size=2048), st.text(max_size=80))
def test_what_is_sealed_opens_to_the_same_bytes(plaintext: bytes, context: str) -> None:
    box = OLD.seal(plaintext, context)
    assert OLD.open(box, context) == plaintext
    if len(plaintext) >= 8:
        assert plaintext not in box


def test_a_box_names_its_key_and_never_repeats_its_ciphertext() -> None:
    first, second = (OLD.seal(b"EAAG-token", "instance-token:1") for _ in range(2))
    assert box_key_ids(first) == [OLD.ids[0]]
    assert first != second  # a fresh nonce each time


def test_a_box_under_a_rotated_keyring_opens_with_either_key_alone() -> None:
    both = OLD.with_primary(NEW.primary)
    assert both.ids == (NEW.ids[0], OLD.ids[0])
    box = both.seal(b"token", "ctx")
    assert box_key_ids(box) == list(both.ids)
    assert OLD.open(box, "ctx") == NEW.open(box, "ctx") == b"token"
    assert both.primary_only().ids == NEW.ids


def test_the_wrong_key_is_a_clear_error_naming_key_ids_only() -> None:
    box = OLD.seal(b"EAAG-secret-token", "instance-token:1")
    with pytest.raises(SecretKeyError) as caught:
        NEW.open(box, "instance-token:1")
    message = str(caught.value)
    assert message.startswith(f"{SETTING}: instance-token:1 is sealed under key(s) {OLD.ids[0]}")
    assert NEW.ids[0] in message
    assert "EAAG" not in message
    assert encode_key(OLD.primary) not in message
    assert isinstance(caught.value, ConfigError)


def test_a_box_moved_to_another_row_or_altered_does_not_open() -> None:
    box = OLD.seal(b"token-a", "instance-token:A")
    with pytest.raises(SecretKeyError, match="altered or moved"):
        OLD.open(box, "instance-token:B")
    flipped = bytearray(box)
    flipped[-1] ^= 1
    with pytest.raises(SecretKeyError, match="altered or moved"):
        OLD.open(bytes(flipped), "instance-token:A")
    for damaged in (box[:-3], box + b"x", b"", b"\x02" + box[1:], b"plain text token"):
        with pytest.raises(SecretKeyError):
            OLD.open(damaged, "instance-token:A")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("not*base64@all!", "not base64"),
        (encode_key(b"short"), "5 bytes"),
        (f"{encode_key(OLD.primary)},{encode_key(OLD.primary)}", "twice"),
    ],
)
def test_a_bad_keyring_setting_is_one_line_naming_it(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Keyring.parse(text)
    assert caught.value.setting == SETTING
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_keys_read_back_from_their_text_form_standard_base64_too() -> None:
    both = OLD.with_primary(NEW.primary)
    assert Keyring.parse(both.encode()).ids == both.ids
    standard = encode_key(OLD.primary).replace("-", "+").replace("_", "/").rstrip("=")
    assert Keyring.parse(f" {standard} ").ids == OLD.ids


def test_the_keyring_travels_to_actors_and_never_shows_its_keys() -> None:
    assert pickle.loads(pickle.dumps(OLD)).ids == OLD.ids  # noqa: S301 (our own bytes)
    assert repr(OLD) == f"Keyring(ids=['{OLD.ids[0]}'])"

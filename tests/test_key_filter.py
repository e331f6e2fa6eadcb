"""``KeyFilter``: the keys a trimmed state forgot. It must never miss a key it was given (a
miss would answer an old idempotency key as new, and record a duplicate); a false "maybe"
only costs a look-up, and must stay rare as it grows."""

from __future__ import annotations

from fastpool._key_filter import KeyFilter


def test_every_key_given_is_found_across_layers() -> None:
    keys = [f"msg.key.{i}" for i in range(50_000)]  # the first layer takes 4,096: several layers
    found = KeyFilter()
    found.add_all(keys[:10])
    found.add_all(keys[10:])
    assert len(found) == len(keys)
    assert all(key in found for key in keys)


def test_an_empty_filter_finds_nothing() -> None:
    assert "msg.key.0" not in KeyFilter()
    assert "" not in KeyFilter()


def test_keys_never_given_are_rarely_found() -> None:
    found = KeyFilter()
    found.add_all(f"msg.key.{i}" for i in range(50_000))
    false = sum(f"msg.new.{i}" in found for i in range(50_000))
    assert false < 50_000 // 100  # 0.2-0.5 % expected (string hashes vary by process): under 1 %

"""MACs are compared in constant time: the check of `protocols.signing`'s source, and its teeth."""

from __future__ import annotations

from benchmarks.chaos import mac_comparisons


def test_signing_compares_macs_with_compare_digest_only() -> None:
    check = mac_comparisons()
    assert check.compare_digest_calls >= 1
    assert check.equality_on_macs == []
    assert check.held


def test_an_equality_test_on_a_mac_is_found() -> None:
    source = (
        "import hmac\n"
        "def verify(mac, expected_mac):\n"
        "    return mac == expected_mac\n"
        "def verify_call(key, frame, sig):\n"
        "    return hmac.new(key, frame, 'sha256').digest() != sig\n"
        "def verify_attr(self, frame):\n"
        "    return frame.signature is self.signature\n"
    )
    check = mac_comparisons(source)
    assert check.equality_on_macs == [3, 5, 7]
    assert not check.held


def test_comparisons_of_other_values_and_no_compare_digest_are_told_apart() -> None:
    other = "def f(frame, magic):\n    return len(frame) == 52 and magic == b'x'\n"
    assert mac_comparisons(other).equality_on_macs == []
    # Without a single compare_digest, nothing proves the MACs are compared safely.
    assert not mac_comparisons("x = 1\n").held

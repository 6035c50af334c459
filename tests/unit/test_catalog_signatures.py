"""What a refused signature says, read from skopeo's own words (no skopeo run here)."""

from __future__ import annotations

from pathlib import Path

from toolship.catalog.signatures import _failure
from toolship.config import SigningKey

KEY = SigningKey(scope="127.0.0.1:5055", gpg_key=Path("/etc/toolship/release.asc"))
IMAGE = "127.0.0.1:5055/tools/wc@sha256:" + "a" * 64


def test_a_signature_by_another_key_names_that_key_not_gos_dump_of_it() -> None:
    # skopeo 1.9.3 (Debian 12), an image signed by a key the policy does not name.
    stderr = (
        'time="2026-11-28T15:58:36Z" level=fatal msg="Source image rejected: Invalid GPG '
        'signature: gpgme.Signature{Summary:128, Fingerprint:\\"C507C82295C4F5B0916429682BBB'
        '33F9A2C23331\\", Status:gpgme.Error{err:0x9}, Timestamp:time.Date(2026, '
        "time.November, 28, 15, 58, 35, 0, time.Local), ExpTimestamp:time.Date(1970, "
        "time.January, 1, 0, 0, 0, 0, time.Local), WrongKeyUsage:false, PKATrust:0x0, "
        'ChainModel:false, Validity:0, ValidityReason:error(nil), PubkeyAlgo:1, HashAlgo:10}"\n'
    )
    assert _failure(stderr, IMAGE, KEY) == (
        "it is signed by GPG key C507C82295C4F5B0916429682BBB33F9A2C23331"
    )


def test_an_unsigned_image_keeps_skopeos_reason() -> None:
    stderr = (
        'time="2026-11-28T15:58:36Z" level=fatal msg="Source image rejected: A signature was '
        'required, but no signature exists"\n'
    )
    assert _failure(stderr, IMAGE, KEY) == "A signature was required, but no signature exists"

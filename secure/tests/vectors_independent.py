"""Reproduces SPEC.md Appendix B from the text of SPEC section 17 with another Noise library
(the `noiseprotocol` package from PyPI), so that the vectors are known to follow from the
specification and not only from the reference implementation.

Run: python3 secure/tests/vectors_independent.py [SPEC.md]
"""

import hashlib
import sys
import warnings

from noise.connection import Keypair, NoiseConnection

PROTOCOL = b"Noise_XX_25519_ChaChaPoly_SHA256"


def stated(spec_text):
    """The `name = value` lines of Appendix B's code block."""
    appendix = spec_text.split("\n## Appendix B", 1)[1]
    block = appendix.split("```text", 1)[1].split("```", 1)[0]
    return dict(line.split(" = ", 1) for line in block.strip().splitlines())


def tcp_open(device_id):
    """A TCP binding OPEN message (SPEC 14.3)."""
    payload = device_id.encode()
    return bytes([0xAC, 0x4D, 0, 1, 0]) + len(payload).to_bytes(3, "big") + bytes(4) + payload


def envelope(kind, body):
    """A secure-layer envelope (SPEC 17.4)."""
    return bytes([0xAC, 0x4D, 1, kind, 0]) + len(body).to_bytes(3, "big") + bytes(4) + body


def side(initiator, static, ephemeral, prologue):
    connection = NoiseConnection.from_name(PROTOCOL)
    if initiator:
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    connection.set_keypair_from_private_bytes(Keypair.STATIC, static)
    connection.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral)
    connection.set_prologue(prologue)
    connection.start_handshake()
    return connection


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "SPEC.md"
    with open(path, encoding="utf-8") as spec:
        v = stated(spec.read())
    got = {}
    raw = lambda name: bytes.fromhex(v[name])  # noqa: E731

    opening = tcp_open("phone") + tcp_open("tablet")
    prologue = (
        b"acm-secure\x01" + bytes([5]) + b"phone" + bytes([6]) + b"tablet"
        + len(opening).to_bytes(4, "big") + opening
    )
    got["prologue"] = prologue
    dialer = side(True, raw("dialer_static_private"), raw("dialer_ephemeral_private"), prologue)
    acceptor = side(False, raw("acceptor_static_private"), raw("acceptor_ephemeral_private"), prologue)
    nonce = raw("dialer_nonce")

    message_1 = dialer.write_message(hashlib.sha256(nonce).digest())
    acceptor.read_message(message_1)
    message_2 = acceptor.write_message(b"")
    dialer.read_message(message_2)
    h2 = dialer.noise_protocol.handshake_state.symmetric_state.h
    message_3 = dialer.write_message(nonce)
    acceptor.read_message(message_3)
    got["message_1"] = envelope(0x7E, message_1)
    got["message_2"] = envelope(0x7E, message_2)
    got["message_3"] = envelope(0x7E, message_3)
    got["h2"] = h2
    got["handshake_hash"] = dialer.get_handshake_hash()
    got["dialer_static_public"] = dialer.noise_protocol.keypairs["s"].public_bytes
    got["acceptor_static_public"] = acceptor.noise_protocol.keypairs["s"].public_bytes
    got["confirmation_record_0"] = envelope(0x7F, dialer.encrypt(b""))
    got["frame_record_1"] = envelope(0x7F, dialer.encrypt(raw("frame")))
    if acceptor.decrypt(got["confirmation_record_0"][12:]) != b"":
        raise SystemExit("the acceptor cannot open the confirmation")

    digest = hashlib.sha256(b"acm pairing code" + h2 + nonce).digest()
    code = "%06d" % (int.from_bytes(digest[:8], "big") % 1_000_000)
    fingerprint = hashlib.sha256(got["dialer_static_public"]).hexdigest()[:20]
    fingerprint = "-".join(fingerprint[i : i + 4] for i in range(0, 20, 4))

    wrong = [name for name, value in got.items() if value.hex() != v[name]]
    if code != v["pairing_code"]:
        wrong.append("pairing_code")
    if fingerprint != v["dialer_fingerprint"]:
        wrong.append("dialer_fingerprint")
    if wrong:
        raise SystemExit("Appendix B disagrees with SPEC section 17 on: " + ", ".join(wrong))
    print(f"Appendix B: {len(got) + 2} vectors reproduced with noiseprotocol")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()

"""An acm peer on Bumble's own L2CAP stack, to check that transport-ble speaks standard L2CAP
LE credit-based channels and the acm BLE binding.

usage: peer.py HCI_PORT TARGET_ADDRESS

Connects to TARGET_ADDRESS (a static random address), opens a channel on the acm SPSM,
exchanges OPEN SDUs, sends two acm frames (one of them 65535 bytes) and expects each back
unchanged, then closes the link with a CLOSE SDU (code 9, "bumble done") and waits for the peer
to take the channel down. Prints "PASS" and exits 0 when everything held.
"""

import asyncio
import struct
import sys

from bumble.device import Device
from bumble.hci import Address
from bumble.l2cap import LeCreditBasedChannelSpec
from bumble.transport import open_transport

SPSM = 0x00AC
MY_ID = b"bumble-peer"


def binding_sdu(kind: int, payload: bytes) -> bytes:
    """A BLE binding SDU: the acm header layout with version 0."""
    return bytes([0xAC, 0x4D, 0x00, kind, 0x00]) + len(payload).to_bytes(3, "big") + bytes(4) + payload


def acm_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """An acm frame: magic, version 1, type, no flags, 24-bit length, 32-bit channel."""
    return (
        bytes([0xAC, 0x4D, 0x01, frame_type, 0x00])
        + len(payload).to_bytes(3, "big")
        + channel.to_bytes(4, "big")
        + payload
    )


async def open_channel(connection):
    spec = LeCreditBasedChannelSpec(psm=SPSM, mtu=65535, mps=2048, max_credits=64)
    for _ in range(50):
        try:
            return await connection.create_l2cap_channel(spec=spec)
        except Exception as error:  # the acceptor may not listen yet: ask again
            last = error
            await asyncio.sleep(0.1)
    raise last


async def main(port: str, target: str) -> int:
    async with await open_transport(f"tcp-client:127.0.0.1:{port}") as (source, sink):
        device = Device.with_hci("bumble-peer", Address("F0:F1:F2:F3:F4:F5"), source, sink)
        await device.power_on()
        connection = await device.connect(
            Address(target, Address.RANDOM_DEVICE_ADDRESS), timeout=20
        )
        channel = await open_channel(connection)
        received: asyncio.Queue = asyncio.Queue()
        channel.sink = received.put_nowait
        closed = asyncio.Event()
        channel.on("close", closed.set)

        async def send(sdu: bytes) -> None:
            # Bumble's write() is a byte stream: drain between SDUs so each stays one SDU.
            channel.write(sdu)
            await channel.drain()

        await send(binding_sdu(1, MY_ID))
        first = await asyncio.wait_for(received.get(), 10)
        if first[:4] != bytes([0xAC, 0x4D, 0x00, 0x01]):
            print("FAIL: the first SDU is not an OPEN:", first[:16].hex())
            return 1
        print("peer id:", first[12:].decode())

        frames = [
            acm_frame(0x01, 0, b"hello from bumble"),
            acm_frame(0x07, 1, bytes((i * 7) & 0xFF for i in range(65535 - 12))),
        ]
        for frame in frames:
            await send(frame)
        for frame in frames:
            echoed = await asyncio.wait_for(received.get(), 30)
            if echoed != frame:
                print("FAIL: frame of", len(frame), "bytes came back as", len(echoed))
                return 1
            print("echoed:", len(echoed), "bytes")

        await send(binding_sdu(2, struct.pack(">I", 9) + b"bumble done"))
        await asyncio.wait_for(closed.wait(), 15)
        print("PASS")
        return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))

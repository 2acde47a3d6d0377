"""Two Bumble controllers on one link, each serving HCI H4 on a TCP port of loopback.

Like `python -m bumble.apps.controllers`, but the ports are picked by the system and printed on
one line, "Listening on: PORT1 PORT2", once both are open.
"""

import asyncio
import socket
import sys

from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket


async def main() -> None:
    link = LocalLink()
    ports = []
    transports = []
    for index in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        ports.append(sock.getsockname()[1])
        transport = await open_tcp_server_transport_with_socket(sock)
        transports.append(transport)
        Controller(
            f"C{index}",
            host_source=transport.source,
            host_sink=transport.sink,
            link=link,
        )
    print("Listening on:", *ports, flush=True)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

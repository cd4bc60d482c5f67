"""Join stdin and stdout to a TCP connection: ``python tcp_pipe.py HOST PORT``, an ssh
ProxyCommand (what ``nc HOST PORT`` does), so a client that always dials port 22 reaches a test's
SSH server on another port (tests/ssh_server.py)."""

import os
import selectors
import socket
import sys


def main(host: str, port: int) -> None:
    conn = socket.create_connection((host, port))
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ)
    sel.register(conn, selectors.EVENT_READ)
    out = sys.stdout.fileno()
    while True:
        for key, _ in sel.select():
            if key.fileobj is conn:
                data = conn.recv(65536)
                if not data:
                    return
                while data:
                    data = data[os.write(out, data) :]
            else:
                data = os.read(sys.stdin.fileno(), 65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    sel.unregister(sys.stdin.fileno())
                    continue
                conn.sendall(data)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

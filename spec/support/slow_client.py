"""Hostile HTTP clients for spec/http_spec.lua, on loopback.

  slow_client.py dribble HOST:PORT       headers that never end: seconds until the server closes
  slow_client.py stall HOST:PORT PATH    a body that stops after 2 of 10 bytes: the status line
  slow_client.py idle HOST:PORT N        N connections that send nothing, held until stdin closes
"""
import socket
import sys
import time


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def dribble(addr):
    s = connect(addr)
    start = time.monotonic()
    s.sendall(b"GET /s/greet HTTP/1.1\r\nHost: x\r\n")
    try:
        while True:
            time.sleep(0.1)
            s.sendall(b"X-Slow: 1\r\n")
            if time.monotonic() - start > 20:
                print("still open after 20 s")
                return
    except OSError:
        pass
    print("closed after %.1f s" % (time.monotonic() - start))


def stall(addr, path):
    s = connect(addr)
    s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    data = s.recv(4096)
    print(data.split(b"\r\n", 1)[0].decode())


def idle(addr, n):
    held = [connect(addr) for _ in range(n)]
    print("holding %d" % len(held), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    kind, addr = sys.argv[1], sys.argv[2]
    if kind == "dribble":
        dribble(addr)
    elif kind == "stall":
        stall(addr, sys.argv[3])
    elif kind == "idle":
        idle(addr, int(sys.argv[3]))

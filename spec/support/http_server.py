"""A loopback HTTP server for spec/outgoing_spec.lua, the other end of guests' outgoing
requests. Prints "<http port> <https port>" on its first line, then serves until killed.

  GET  /hello           200 "hello from loopback"
  POST /echo            200 "echo:" + the request body
  GET  /redirect        302 to /hello (the host does not follow it)
  GET  /big?n=N         200 with N bytes (&chunked=1: chunked, no Content-Length)
  GET  /slow?ms=N       200 "slow" after N ms
  GET  /hold            never answers; counts the connection as closed when the client
                        goes away (shuts down or closes)
  GET  /barrier?n=N     200 "together" once N of these arrived, "alone" after 10 s
  GET  /stats           "hits=<requests> held=<requests to /hold> closed=<held connections
                        closed by the client>"

The HTTPS port serves the same with a self-signed certificate for localhost
(spec/fixtures/fetch/cert.pem), which no root trusts."""
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

lock = threading.Lock()
counts = {"hits": 0, "held": 0, "closed": 0}
barriers = {}


def count(name):
    with lock:
        counts[name] += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        count("hits")
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/hello":
            self.reply(200, b"hello from loopback")
        elif url.path == "/redirect":
            self.reply(302, b"moved", [("Location", "/hello")])
        elif url.path == "/big" and q.get("chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            n = int(q["n"])
            while n > 0:
                part = min(n, 1000)
                self.wfile.write(b"%x\r\n%s\r\n" % (part, b"x" * part))
                n -= part
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/big":
            self.reply(200, b"x" * int(q["n"]))
        elif url.path == "/slow":
            time.sleep(int(q["ms"]) / 1000)
            self.reply(200, b"slow")
        elif url.path == "/hold":
            count("held")
            self.connection.settimeout(60)
            try:
                while self.connection.recv(1024):
                    pass
            except OSError:
                pass
            count("closed")
            self.close_connection = True
        elif url.path == "/barrier":
            n = int(q["n"])
            with lock:
                barrier = barriers.setdefault(n, threading.Barrier(n))
            try:
                barrier.wait(timeout=10)
                self.reply(200, b"together")
            except threading.BrokenBarrierError:
                with lock:
                    barriers.pop(n, None)
                self.reply(200, b"alone")
        elif url.path == "/stats":
            with lock:
                body = "hits={hits} held={held} closed={closed}".format(**counts).encode()
            self.reply(200, body)
        else:
            self.reply(404, b"not found")

    def do_POST(self):
        count("hits")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                body += self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    break
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlparse(self.path).path == "/echo":
            self.reply(200, b"echo:" + body)
        else:
            self.reply(404, b"not found")


def serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()


plain = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
tls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
here = os.path.dirname(os.path.abspath(__file__))
fixture = os.path.join(here, "..", "fixtures", "fetch")
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(os.path.join(fixture, "cert.pem"), os.path.join(fixture, "key.pem"))
tls.socket = context.wrap_socket(tls.socket, server_side=True)
for s in (plain, tls):
    s.daemon_threads = True
    # Clients that go away mid-answer are what some specs are about: no tracebacks.
    s.handle_error = lambda request, address: None
    serve(s)
print(plain.server_address[1], tls.server_address[1], flush=True)
# Until killed, or until the spec's pipe closes (stdin at EOF).
sys.stdin.read()

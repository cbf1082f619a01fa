"""Headless Chromium driven over the DevTools protocol (CDP), standard library only.

``Chromium`` starts Debian's ``chromium`` in a session of its own on a free
DevTools port (``--remote-debugging-port=0``: the port is read back from
``DevToolsActivePort`` in its profile directory), attaches to its first page
over a WebSocket, and kills the whole process group on ``close()`` (also as a
context manager). ``navigate(url)`` loads a page; ``evaluate(expr)`` runs a
JavaScript expression in it and returns the value (JSON-able values only).

The WebSocket client is the least RFC 6455 that CDP needs: a client handshake,
masked text frames out, text frames (fragmented or not) in, pings answered.
"""

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request

CHROMIUM_BIN = shutil.which("chromium") or shutil.which("chromium-browser")


class WebSocket:
    """One client connection to a ws://host:port/path URL."""

    def __init__(self, url, timeout=10.0):
        assert url.startswith("ws://"), url
        hostport, _, path = url[len("ws://"):].partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"WebSocket handshake refused: {head.decode(errors='replace')}")

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the DevTools WebSocket closed")
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _send_frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)  # a client masks every frame it sends
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        """The next whole text message."""
        message = b""
        while True:
            b0, b1 = self._take(2)
            fin, opcode, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8))[0]
            mask = self._take(4) if b1 & 0x80 else None
            payload = self._take(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("the DevTools WebSocket was closed by the browser")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1):
                message += payload
                if fin:
                    return message.decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Chromium:
    def __init__(self, profile_dir, timeout=30.0):
        assert CHROMIUM_BIN, "chromium is not installed"
        self.profile_dir = str(profile_dir)
        self.log_path = os.path.join(self.profile_dir, "chromium.log")
        self.next_id = 0
        self.ws = None
        # Root in a container: no sandbox. No GPU, no first-run or background noise.
        cmd = [CHROMIUM_BIN, "--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", "--disable-background-networking", "--no-proxy-server",
               "--remote-debugging-port=0", f"--user-data-dir={self.profile_dir}", "about:blank"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._attach(timeout)
        except BaseException:
            self.close()
            raise

    def _attach(self, timeout):
        deadline = time.monotonic() + timeout
        port_file = os.path.join(self.profile_dir, "DevToolsActivePort")
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"chromium exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with open(port_file) as f:
                    port = int(f.readline().strip())
                # No proxy from the environment: DevTools is on loopback.
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                targets = json.load(opener.open(f"http://127.0.0.1:{port}/json", timeout=2))
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    self.ws = WebSocket(pages[0]["webSocketDebuggerUrl"])
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"chromium's DevTools did not come up in {timeout}s:\n"
                                     f"{self.log()}")
            time.sleep(0.1)

    def call(self, method, **params):
        """One CDP command; its result, or AssertionError with its error."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") != self.next_id:
                continue  # an event: nothing here subscribes to any
            if "error" in message:
                raise AssertionError(f"CDP {method} failed: {message['error']}")
            return message.get("result", {})

    def navigate(self, url):
        self.call("Page.navigate", url=url)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"JavaScript threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-10000:]
        except FileNotFoundError:
            return ""

    def close(self):
        if self.ws:
            self.ws.close()
            self.ws = None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the browser and all its helpers
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

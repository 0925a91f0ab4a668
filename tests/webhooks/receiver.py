"""A webhook receiver for the tests: every delivery is verified with the
Standard Webhooks library (never with UserHub's own signing code).

    python receiver.py PORT

Control, over HTTP on the same port:
  POST /_control {"secrets": [...], "fail": N, "status": S, "delay": SECONDS}
      verify with these secrets; answer the next N deliveries with S
      (default 503; a 3xx carries a Location); wait `delay` seconds
      before each answer.
  GET /_received
      every delivery so far, oldest first: {"id", "type", "verified":
      [one boolean per secret], "status" (what was answered), "body"}.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

STATE = {"secrets": [], "fail": 0, "status": 503, "delay": 0.0, "received": []}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status, body=b""):
        self.send_response(status)
        if 300 <= status < 400:
            # Somewhere to go, for a client that follows redirects.
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/_received":
            return self._answer(404)
        with LOCK:
            body = json.dumps(STATE["received"]).encode()
        self._answer(200, body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        if self.path == "/_control":
            with LOCK:
                STATE.update(json.loads(data))
            return self._answer(204)
        headers = {k: v for k, v in self.headers.items()}
        verified = []
        with LOCK:
            secrets = list(STATE["secrets"])
        for secret in secrets:
            try:
                Webhook(secret).verify(data, headers)
                verified.append(True)
            except WebhookVerificationError:
                verified.append(False)
        with LOCK:
            if STATE["fail"] > 0:
                STATE["fail"] -= 1
                status = STATE["status"]
            elif any(verified):
                status = 204
            else:
                status = 401
            delay = STATE["delay"]
            STATE["received"].append(
                {
                    "id": headers.get("webhook-id"),
                    "type": json.loads(data).get("type"),
                    "verified": verified,
                    "status": status,
                    "body": json.loads(data),
                }
            )
        if delay:
            time.sleep(delay)
        self._answer(status)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.serve_forever()

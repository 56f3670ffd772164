#!/usr/bin/env python3
"""openai_stub.py -- a misbehaving OpenAI-compatible chat-completions server
for tests/test_backend_openai.c.

Listens on 127.0.0.1 at a free port, prints the port on one line of stdout,
and serves until its stdin closes (so it never outlives the test that started
it). What it does with a request is written in the first line of the user
message, as space-separated words:

  echo                  content = the request as the server saw it (JSON), plus
                        the Authorization header (or null)
  count                 counted in the stats (requests of other tests may still be
                        running in the server when a test starts)
  stats / reset         content = {"max_concurrent", "requests"} of the counted
                        requests since the last reset
  status=N times=K      the first K tries of this prompt get HTTP N (K default: all)
  retry_after=S         ... with a Retry-After: S header
  cut times=K           the first K tries: Content-Length promised, half sent, closed
  sleep=S               wait S seconds before answering
  trickle=S             send the answer one byte at a time over S seconds
  endless               send a byte every 50 ms, never finishing (10 s at most)
  huge=N / huge_cl=N    a body of N bytes, close-delimited / with Content-Length
  garbage / truncated / array / no_choices / error200 / badcontent
                        a 200 with a body that is not a usable completion
  null_content / no_content / finish=X / no_usage
  reasoning_content=X / reasoning=X

Otherwise the answer is "answer to: " + the rest of the first line's prompt.

The path says what the endpoint is, whatever the prompt (one stub plays
several endpoints of a fan-out): /v1/... a working one, /NAME/v1/... another
working one, /broken503/v1/... always HTTP 503, /garbage/v1/... always a body
that is not JSON. stats also has "paths": requests per first path segment.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
tries = {}              # prompt -> tries seen
stats = {"current": 0, "max_concurrent": 0, "requests": 0}
paths = {}              # first path segment -> requests since the last reset


def words(prompt):
    first = prompt.split("\n", 1)[0]
    out = {}
    for w in first.split():
        k, _, v = w.partition("=")
        out[k] = v
    return out


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def uncount(self):
        # A request leaves the count before its reply is written: the client
        # may send its next request as soon as it has the reply, so counting
        # down after the write would see one request too many in flight.
        if getattr(self, "counted", False):
            self.counted = False
            with lock:
                stats["current"] -= 1

    def send_body(self, code, body, extra=None):
        data = body.encode() if isinstance(body, str) else body
        self.uncount()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def completion(self, w, content):
        msg = {"role": "assistant"}
        if "null_content" in w:
            msg["content"] = None
        elif "no_content" not in w:
            msg["content"] = content
        if "reasoning_content" in w:
            msg["reasoning_content"] = w["reasoning_content"]
        if "reasoning" in w:
            msg["reasoning"] = w["reasoning"]
        out = {"id": "stub", "object": "chat.completion",
               "choices": [{"index": 0, "message": msg, "finish_reason": w.get("finish", "stop")}]}
        if "no_usage" not in w:
            out["usage"] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        return json.dumps(out)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        req = json.loads(raw)
        prompt = req["messages"][0]["content"]
        w = words(prompt)
        segment = self.path.lstrip("/").split("/", 1)[0]
        if "stats" in w or "reset" in w:
            with lock:
                s = {"max_concurrent": stats["max_concurrent"], "requests": stats["requests"], "paths": dict(paths)}
                if "reset" in w:
                    stats["max_concurrent"] = stats["requests"] = 0
                    tries.clear()
                    paths.clear()
            return self.send_body(200, self.completion({}, json.dumps(s)))
        with lock:
            paths[segment] = paths.get(segment, 0) + 1
        if segment == "broken503":
            return self.send_body(503, json.dumps({"error": {"message": "stub endpoint is broken"}}))
        if segment == "garbage":
            return self.send_body(200, "<html>a proxy's page</html>")
        counted = self.counted = "count" in w
        with lock:
            if counted:
                stats["current"] += 1
                stats["requests"] += 1
                stats["max_concurrent"] = max(stats["max_concurrent"], stats["current"])
            tries[prompt] = tries.get(prompt, 0) + 1
            attempt = tries[prompt]
        try:
            self.answer(w, req, prompt, attempt)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.uncount()

    def answer(self, w, req, prompt, attempt):
        if "sleep" in w:
            time.sleep(float(w["sleep"]))
        times = int(w.get("times", "1000000"))
        if "status" in w and attempt <= times:
            code = int(w["status"])
            extra = {"Retry-After": w["retry_after"]} if "retry_after" in w else None
            return self.send_body(code, json.dumps({"error": {"message": "stub says %d" % code}}), extra)
        body = self.completion(w, "answer to: " + prompt.split("\n", 1)[-1])
        if "cut" in w and attempt <= times:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2].encode())
            self.wfile.flush()
            return
        if "echo" in w:
            seen = dict(req)
            seen["authorization"] = self.headers.get("Authorization")
            return self.send_body(200, self.completion(w, json.dumps(seen)))
        if "garbage" in w:
            return self.send_body(200, "<html>this is not JSON</html>")
        if "truncated" in w:
            return self.send_body(200, body[: len(body) - 10])
        if "array" in w:
            return self.send_body(200, "[1, 2]")
        if "no_choices" in w:
            return self.send_body(200, json.dumps({"id": "x", "choices": []}))
        if "error200" in w:
            return self.send_body(200, json.dumps({"error": {"message": "model overloaded, try later"}}))
        if "badcontent" in w:
            return self.send_body(200, json.dumps({"choices": [{"message": {"content": 42}}]}))
        if "trickle" in w:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            pause = float(w["trickle"]) / len(data)
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(pause)
            return
        if "endless" in w:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"choices": [')
            for _ in range(200):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)
            return
        if "huge" in w or "huge_cl" in w:
            total = int(w.get("huge") or w.get("huge_cl"))
            self.send_response(200)
            if "huge_cl" in w:
                self.send_header("Content-Length", str(total))
            self.end_headers()
            chunk = b"x" * 65536
            sent = 0
            while sent < total:
                part = chunk[: min(len(chunk), total - sent)]
                self.wfile.write(part)
                sent += len(part)
            return
        return self.send_body(200, body)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # the test closed our stdin (or died): stop
    os._exit(0)


if __name__ == "__main__":
    main()

"""Test double: a tiny OpenAI-compatible model server (no model; canned answers) for the gateway's
script tests. Serves GET /v1/models, POST /v1/chat/completions (plain and SSE-streamed), POST /v1/completions,
POST /v1/embeddings and a Prometheus /metrics with vLLM's load gauges. Prints its port on stdout."""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = sys.argv[1] if len(sys.argv) > 1 else "stub-model"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-seen-request-id", self.headers.get("x-request-id", ""))
        self.send_header("x-seen-traceparent", self.headers.get("traceparent", ""))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 1700000000, "owned_by": "stub"}]})
        elif self.path == "/metrics":
            body = (b"# TYPE vllm:num_requests_waiting gauge\n"
                    b'vllm:num_requests_waiting{model_name="m"} 0\n'
                    b'vllm:kv_cache_usage_perc{model_name="m"} 0.25\n')
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/v1/embeddings":
            self.send_json(200, {"object": "list", "model": MODEL, "data": [
                {"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "usage": {"prompt_tokens": 1, "total_tokens": 1}})
            return
        words = ["Hello", " from", " the", " stub", "."]
        created = int(time.time())
        if not req.get("stream"):
            if self.path == "/v1/completions":
                self.send_json(200, {"id": "cmpl-1", "object": "text_completion", "created": created,
                                     "model": MODEL, "choices": [{"index": 0, "text": "".join(words),
                                                                  "finish_reason": "stop", "logprobs": None}],
                                     "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})
                return
            self.send_json(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": created,
                                 "model": MODEL, "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                     "role": "assistant", "content": "".join(words)}}],
                                 "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(obj):
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": created, "model": MODEL}
        event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]})
        for w in words:
            event({**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
        event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        event(b"[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()

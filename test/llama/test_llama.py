#!/usr/bin/env python3
"""Integration tests against a real llama.cpp backend (node-llama-cpp on CPU, a tiny generated model), driven by
the official openai Python client: directly, and through swarm_gateway when that binary is built.

    test_llama.py --work-dir DIR [--gateway PATH] [-v]

Exits 77 (ctest: skipped) with a message when a prerequisite is missing: node, test/llama/node_modules (run
scripts/install-deps), or the openai package. The gateway tests skip on their own when PATH does not exist.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_NAME = "tiny-llama"
START_TIMEOUT_S = 60

try:
    import openai
except ImportError:  # checked in main(), where a skip can be reported
    openai = None

ARGS = None


def prerequisites_missing():
    if shutil.which("node") is None:
        return "node is not installed (scripts/install-deps installs it)"
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        return f"node {version} is too old: node-llama-cpp 3.22.1 needs node 20 or later"
    if not os.path.isdir(os.path.join(HERE, "node_modules", "node-llama-cpp")):
        return "test/llama/node_modules is missing: run scripts/install-deps (npm install --omit=optional in test/llama)"
    if openai is None:
        return "the openai Python package is missing: run scripts/install-deps (pip install openai)"
    return None


class Process:
    """A child that prints 'listening on HOST:PORT' and writes its port to --port-file; killed at the end."""

    def __init__(self, argv, name, cwd=None):
        self.name = name
        self.port_file = os.path.join(ARGS.work_dir, f"{name}.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log_path = os.path.join(ARGS.work_dir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv + ["--port-file", self.port_file], cwd=cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}: {self.read_log()}")
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text.isdigit():
                    self.port = int(text)
                    break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{name} did not start within {START_TIMEOUT_S} s: {self.read_log()}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def read_log(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-2000:]

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.log.close()


def start_backend(name):
    return Process(["node", os.path.join(HERE, "server.mjs"), "--model", ARGS.model, "--name", MODEL_NAME,
                    "--threads", "1", "--listen", "127.0.0.1:0"], name, cwd=HERE)


def get_json(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def post_raw(port, path, body, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", path, body=body, headers={"content-type": "application/json", **(headers or {})})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def client_for(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0, timeout=30)


def wait_for(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


HELLO = [{"role": "user", "content": "hello swarm"}]


class Suite:
    """The behaviour both routes must show; `self.client` points at a backend or at the gateway."""

    def stats(self):
        raise NotImplementedError

    def test_lists_the_model(self):
        ids = [m.id for m in self.client.models.list()]
        self.assertIn(MODEL_NAME, ids)

    def test_chat_is_deterministic_and_reports_usage(self):
        a = self.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12)
        b = self.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12)
        self.assertEqual(a.choices[0].message.role, "assistant")
        self.assertTrue(a.choices[0].message.content)
        self.assertEqual(a.choices[0].message.content, b.choices[0].message.content)
        self.assertEqual(a.choices[0].finish_reason, "length")
        self.assertEqual(a.usage.completion_tokens, 12)
        self.assertGreater(a.usage.prompt_tokens, 0)
        self.assertEqual(a.usage.total_tokens, a.usage.prompt_tokens + a.usage.completion_tokens)
        self.assertEqual(a.choices[0].message.content, self.expected_hello)

    def test_streamed_chat_matches_the_whole_answer(self):
        stream = self.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12, stream=True,
                                                     stream_options={"include_usage": True})
        chunks = list(stream)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, self.expected_hello)
        self.assertGreaterEqual(sum(1 for c in chunks if c.choices and c.choices[0].delta.content), 2,
                                "tokens arrive as separate chunks")
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(finishes, ["length"])
        self.assertIsNotNone(chunks[-1].usage)
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, 12)

    def test_stop_strings_cut_the_answer(self):
        words = self.expected_hello.split()
        self.assertGreaterEqual(len(words), 4)
        stop = " " + words[3]
        cut = self.expected_hello[: self.expected_hello.index(stop)]
        r = self.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12, stop=[stop])
        self.assertEqual(r.choices[0].message.content, cut)
        self.assertEqual(r.choices[0].finish_reason, "stop")
        stream = self.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12, stop=stop,
                                                     stream=True)
        chunks = list(stream)
        self.assertEqual("".join(c.choices[0].delta.content or "" for c in chunks if c.choices), cut)
        self.assertEqual([c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason],
                         ["stop"])

    def test_text_completions(self):
        r = self.client.completions.create(model=MODEL_NAME, prompt="the swarm", max_tokens=6)
        self.assertTrue(r.choices[0].text)
        self.assertEqual(r.usage.completion_tokens, 6)
        streamed = "".join(c.choices[0].text for c in
                           self.client.completions.create(model=MODEL_NAME, prompt="the swarm", max_tokens=6,
                                                          stream=True) if c.choices)
        self.assertEqual(streamed, r.choices[0].text)

    def test_a_client_that_disconnects_cancels_its_generation(self):
        before = self.stats()
        stream = self.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=1000, stream=True)
        received = 0
        for c in stream:
            if c.choices and c.choices[0].delta.content:
                received += 1
                if received == 3:
                    break
        stream.close()
        self.assertTrue(wait_for(lambda: self.stats()["cancelled"] > before["cancelled"]),
                        "the backend saw the disconnect and stopped")
        after = self.stats()
        self.assertLess(after["generated_tokens"] - before["generated_tokens"], 500,
                        "generation stopped long before max_tokens")
        # The backend serves the next request normally.
        r = self.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12)
        self.assertEqual(r.choices[0].message.content, self.expected_hello)

    def test_an_unknown_model_is_a_not_found_error(self):
        with self.assertRaises(openai.NotFoundError):
            self.client.chat.completions.create(model="no-such-model", messages=HELLO, max_tokens=4)


class Direct(Suite, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = start_backend("direct")
        cls.client = client_for(cls.backend.url)
        r = cls.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12)
        cls.expected_hello = r.choices[0].message.content

    @classmethod
    def tearDownClass(cls):
        cls.backend.kill(signal.SIGTERM)

    def stats(self):
        return get_json(self.backend.port, "/stats")[1]

    def test_bad_input_gets_a_clear_error(self):
        status, body = post_raw(self.backend.port, "/v1/chat/completions", b"{not json")
        self.assertEqual(status, 400)
        self.assertIn("malformed JSON", json.loads(body)["error"]["message"])
        status, body = post_raw(self.backend.port, "/v1/chat/completions",
                                json.dumps({"model": MODEL_NAME, "messages": []}).encode())
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["error"]["param"], "messages")
        status, _ = post_raw(self.backend.port, "/v1/chat/completions",
                             json.dumps({"model": MODEL_NAME, "messages": HELLO, "max_tokens": 0}).encode())
        self.assertEqual(status, 400)


def gateway_missing():
    if not ARGS.gateway or not os.path.exists(ARGS.gateway):
        return f"swarm_gateway is not built ({ARGS.gateway or 'no path given'}): the gateway tests need it"
    return None


class ThroughGateway(Suite, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = gateway_missing()
        if missing:
            raise unittest.SkipTest(missing)
        cls.backends = [start_backend("gw-backend-a"), start_backend("gw-backend-b")]
        argv = [ARGS.gateway, "--listen", "127.0.0.1:0"]
        for b in cls.backends:
            argv += ["--backend", b.url]
        cls.gateway = Process(argv, "gateway")
        cls.client = client_for(cls.gateway.url)
        # The gateway learns models from the backends: wait until it lists ours.
        if not wait_for(lambda: MODEL_NAME in [m.id for m in cls.client.models.list()], 20):
            raise RuntimeError(f"the gateway never listed {MODEL_NAME}: {cls.gateway.read_log()}")
        direct = client_for(cls.backends[0].url)
        cls.expected_hello = direct.chat.completions.create(model=MODEL_NAME, messages=HELLO,
                                                            max_tokens=12).choices[0].message.content

    @classmethod
    def tearDownClass(cls):
        for p in [getattr(cls, "gateway", None)] + getattr(cls, "backends", []):
            if p:
                p.kill(signal.SIGTERM)

    def stats(self):
        # Summed over the live backends: the gateway chooses one of them per request.
        total = {}
        for b in self.backends:
            if b.proc.poll() is None:
                for k, v in get_json(b.port, "/stats")[1].items():
                    total[k] = total.get(k, 0) + v
        return total

    def test_zz_failover_when_a_backend_is_killed_mid_run(self):
        # Runs last (name order): it kills a backend.
        requests_before = [get_json(b.port, "/stats")[1]["requests"] for b in self.backends]
        stream = self.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=1000, stream=True)
        it = iter(stream)
        got = ""
        while len(got.split()) < 3:
            c = next(it)
            if c.choices:
                got += c.choices[0].delta.content or ""
        serving = [i for i, b in enumerate(self.backends)
                   if get_json(b.port, "/stats")[1]["requests"] > requests_before[i]]
        self.assertEqual(len(serving), 1, "exactly one backend took the request")
        victim, survivor = self.backends[serving[0]], self.backends[1 - serving[0]]
        survivor_requests = get_json(survivor.port, "/stats")[1]["requests"]
        victim.kill(signal.SIGKILL)
        # The stream was under way: the gateway must not restart it elsewhere (the client would get the text
        # twice). It ends without a proper finish: an error, or an end with no finish_reason.
        finished = False
        try:
            for c in it:
                if c.choices and c.choices[0].finish_reason:
                    finished = True
        except (openai.APIError, http.client.HTTPException, OSError):
            pass
        self.assertFalse(finished, "a stream cut by a dead backend did not end as if complete")
        self.assertEqual(get_json(survivor.port, "/stats")[1]["requests"], survivor_requests,
                         "no request was replayed on the survivor after the first byte")
        # New requests go to the survivor and get the same deterministic answer.
        for _ in range(4):
            r = self.client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12)
            self.assertEqual(r.choices[0].message.content, self.expected_hello)
        self.assertGreaterEqual(get_json(survivor.port, "/stats")[1]["requests"], survivor_requests + 4)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--gateway", default="")
    ap.add_argument("-v", action="store_true")
    ARGS, rest = ap.parse_known_args()
    missing = prerequisites_missing()
    if missing:
        print(f"SKIP: {missing}")
        return 77
    os.makedirs(ARGS.work_dir, exist_ok=True)
    ARGS.model = os.path.join(ARGS.work_dir, "tiny.gguf")
    subprocess.run([sys.executable, os.path.join(HERE, "make_tiny_gguf.py"), ARGS.model, "--seed", "1"], check=True)
    gw = gateway_missing()
    if gw:
        print(f"NOTE: {gw}; running the direct tests only")
    prog = unittest.main(argv=[sys.argv[0]] + rest + (["-v"] if ARGS.v else []), exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())

"""The official openai Python client against swarm_gateway, in front of the stub backend (a test double).

Usage: python3 openai_client_test.py PATH/TO/swarm_gateway
Checks: bad command lines are refused (exit status 2, the problem named); models.list() sees the backend's model through the gateway; chat.completions.create() non-streamed
and streamed (the role chunk, content chunks in order, finish_reason); a wrong key is refused as
openai.AuthenticationError; SIGTERM stops the gateway with exit status 0."""
import os
import signal
import subprocess
import sys

import openai

HERE = os.path.dirname(os.path.abspath(__file__))


def bad_command_lines(gateway_exe):
    """Each bad command line is refused with exit status 2 and a sentence naming the problem."""
    cases = [
        (["--listen", "nope", "--backend", "http://127.0.0.1:1"], "--listen nope"),
        (["--listen", "127.0.0.1:0", "--backend", "ftp://x:1"], "http://"),
        (["--listen", "127.0.0.1:0"], "--backend"),
        (["--listen", "127.0.0.1:0", "--backend", "http://127.0.0.1:1", "--frobnicate", "1"], "--frobnicate"),
        (["--listen", "127.0.0.1:0", "--seed", "127.0.0.1:7946"], "--mesh"),
        (["--config", "/nonexistent/gateway.json"], "/nonexistent/gateway.json"),
    ]
    for args, needle in cases:
        p = subprocess.run([gateway_exe] + args, capture_output=True, text=True, timeout=20)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert needle in p.stderr, (args, p.stderr)


def main():
    gateway_exe = sys.argv[1]
    bad_command_lines(gateway_exe)
    backend = subprocess.Popen([sys.executable, os.path.join(HERE, "stub_backend.py"), "stub-7b"],
                               stdout=subprocess.PIPE, text=True)
    gateway = None
    try:
        backend_port = int(backend.stdout.readline())
        gateway = subprocess.Popen([gateway_exe, "--listen", "127.0.0.1:0", "--backend",
                                    f"http://127.0.0.1:{backend_port}", "--api-key", "sk-test-key"],
                                   stdout=subprocess.PIPE, text=True)
        line = gateway.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        base = f"http://127.0.0.1:{port}/v1"
        client = openai.OpenAI(base_url=base, api_key="sk-test-key", timeout=20, max_retries=0)

        models = [m.id for m in client.models.list()]
        assert models == ["stub-7b"], models

        chat = client.chat.completions.create(model="stub-7b", messages=[{"role": "user", "content": "hi"}])
        assert chat.choices[0].message.content == "Hello from the stub.", chat
        assert chat.usage.total_tokens == 8, chat.usage

        chunks = list(client.chat.completions.create(model="stub-7b", stream=True,
                                                      messages=[{"role": "user", "content": "hi"}]))
        assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == "Hello from the stub.", text
        assert chunks[-1].choices[0].finish_reason == "stop", chunks[-1]

        try:
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
            raise AssertionError("an unknown model was accepted")
        except openai.NotFoundError as e:
            assert e.code == "model_not_found", e.body

        bad = openai.OpenAI(base_url=base, api_key="sk-wrong", timeout=20, max_retries=0)
        try:
            bad.models.list()
            raise AssertionError("a wrong key was accepted")
        except openai.AuthenticationError as e:
            assert e.code == "invalid_api_key", e.body

        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=20) == 0
        gateway = None
        print("openai client: models, chat, streamed chat, errors: ok")
    finally:
        if gateway:
            gateway.kill()
        backend.kill()


if __name__ == "__main__":
    main()

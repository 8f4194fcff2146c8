#!/usr/bin/env python3
"""The side-by-side benchmark's tools work and refuse bad input: the stub OpenAI backend answers what the load
generator sends (non-streamed, saturating and streamed runs report results and no errors), and both reject bad
command lines with a usage message and exit code 2.

    test_tools.py STUB LOAD
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

STUB, LOAD = sys.argv[1], sys.argv[2]


class Tools(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="swarm-dispatch-tools-")
        port_file = os.path.join(cls.tmp, "port")
        cls.stub = subprocess.Popen([STUB, "--listen", "127.0.0.1:0", "--port-file", port_file, "--chunks", "5",
                                     "--chunk-interval-us", "200"], stdout=subprocess.PIPE, text=True)
        line = cls.stub.stdout.readline()
        if not line.startswith("listening on 127.0.0.1:"):
            raise RuntimeError(f"unexpected first line from the stub: {line!r}")
        cls.port = int(line.rsplit(":", 1)[1])
        deadline = time.monotonic() + 5
        while not os.path.exists(port_file) and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(port_file) as f:
            assert int(f.read()) == cls.port

    @classmethod
    def tearDownClass(cls):
        cls.stub.terminate()
        cls.stub.wait(timeout=10)

    def load(self, *extra):
        out = subprocess.run([LOAD, "--target", f"127.0.0.1:{self.port}", "--seconds", "0.5", "--connections", "2",
                              *extra], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def test_fixed_rate_requests_all_succeed(self):
        r = self.load("--mode", "rate", "--rate", "200")
        self.assertEqual(r["errors"], 0)
        self.assertGreaterEqual(r["ok"], 80)  # 100 scheduled in 0.5 s
        self.assertGreater(r["p50_us"], 0)
        self.assertLessEqual(r["p50_us"], r["p99_us"])

    def test_saturation_reports_the_targets_cpu(self):
        r = self.load("--mode", "saturate", "--pid", str(self.stub.pid))
        self.assertEqual(r["errors"], 0)
        self.assertGreater(r["ok"], 0)
        self.assertGreater(r["target_cpu_s"], 0)

    def test_streamed_chunks_are_each_timed(self):
        r = self.load("--mode", "stream", "--rate", "20")
        self.assertEqual(r["errors"], 0)
        self.assertEqual(r["samples"], 5 * r["ok"], "one delay per chunk, 5 chunks per stream")

    def test_bad_command_lines_are_refused(self):
        for argv in ([LOAD], [LOAD, "--target", "127.0.0.1:1", "--mode", "bogus"],
                     [LOAD, "--target", "127.0.0.1:1", "--rate", "x"], [LOAD, "--target", "nocolon"],
                     [STUB, "--chunks", "0"], [STUB, "--listen", "not-an-address:1"], [STUB, "--bogus", "1"]):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 2, argv)
            self.assertIn("usage:", out.stderr, argv)

    def test_a_taken_port_is_a_clear_error(self):
        out = subprocess.run([STUB, "--listen", f"127.0.0.1:{self.port}"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 1)
        self.assertIn("cannot listen on", out.stderr)

    def test_a_dead_target_is_counted_as_errors(self):
        out = subprocess.run([LOAD, "--target", "127.0.0.1:1", "--mode", "rate", "--rate", "20", "--seconds", "0.2"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1)
        r = json.loads(out.stdout)
        self.assertEqual(r["ok"], 0)
        self.assertGreater(r["errors"], 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])

#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF v3 model with random F32 weights, for tests.

    make_tiny_gguf.py OUT.gguf [--seed N]

No model is downloaded: the weights come from a seeded generator (so the same seed writes the same file and a
temperature-0 run gives the same text), and the tokenizer is a small SentencePiece-style ("llama") vocabulary
built here: control tokens for ChatML, the unknown token, printable ASCII characters, a newline byte token and a
few hundred common English words. It has no byte tokens above 0x7F on purpose: whatever the random weights pick,
the detokenised text is valid UTF-8. The ChatML chat template goes in tokenizer.chat_template.

The format (GGUF v3): magic, version, tensor count, metadata count; the metadata key/values; one info record per
tensor (name, dimensions innermost first, type, offset); padding to general.alignment; the tensor data.
"""
import argparse
import random
import struct
import sys

# GGUF metadata value types.
T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9
GGML_F32 = 0
ALIGNMENT = 32

# SentencePiece token types as llama.cpp reads them.
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_BYTE = 1, 2, 3, 6

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

WORDS = """the of and to in is that it was for on are as with his they at be this from have or by one had not
but what all were when we there can an your which their said if do will each about how up out them then she many
some so these would other into has more her two like him see time could no make than first been its who now
people my made over did down only way find use may water long little very after words called just where most
know get through back much go good new write our me man too any day same right look think also around another
came come work three word must because does part even place well such here take why things help put years
different away again off went old number great tell men say small every found still between name should home
big give air line set own under read last never us left end along while might next sound below saw something
thought both few those always looked show large often together asked house world going want school important
until form food keep children feet land side without boy once animals life enough took sometimes four head
above kind began almost live page got earth need far hand high year mother light parts country father let night
following picture being study second eyes soon times story boys since white days ever paper hard near sentence
better best across during today others sure means knew its try told young miles sun ways thing whole hear example
heard several change answer room sea against top turned learn point city play toward five using himself usually
hello swarm model token cluster node gateway router request stream""".split()


def build_vocab():
    tokens, scores, types = [], [], []

    def add(piece, score, kind):
        tokens.append(piece)
        scores.append(score)
        types.append(kind)

    add("<unk>", 0.0, TT_UNKNOWN)
    add("<s>", 0.0, TT_CONTROL)
    add("</s>", 0.0, TT_CONTROL)
    add("<|im_start|>", 0.0, TT_CONTROL)
    add("<|im_end|>", 0.0, TT_CONTROL)
    add("<0x0A>", 0.0, TT_BYTE)  # newline: SentencePiece writes it as a byte token
    # Single characters score lowest, so the tokenizer prefers whole words where it can.
    add("\u2581", -1000.0, TT_NORMAL)  # the word-boundary marker alone (a space)
    for c in range(0x21, 0x7F):
        add(chr(c), -1000.0 - c, TT_NORMAL)
    seen = set()
    for rank, w in enumerate(WORDS):
        if w in seen:
            continue
        seen.add(w)
        add("\u2581" + w, -float(rank), TT_NORMAL)
    return tokens, scores, types


class Writer:
    def __init__(self):
        self.kv = []
        self.tensors = []  # (name, dims innermost first, float array bytes)

    @staticmethod
    def _str(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def u32(self, key, v):
        self.kv.append(self._str(key) + struct.pack("<II", T_UINT32, v))

    def f32(self, key, v):
        self.kv.append(self._str(key) + struct.pack("<If", T_FLOAT32, v))

    def boolean(self, key, v):
        self.kv.append(self._str(key) + struct.pack("<IB", T_BOOL, 1 if v else 0))

    def string(self, key, v):
        self.kv.append(self._str(key) + struct.pack("<I", T_STRING) + self._str(v))

    def array(self, key, elem_type, values):
        out = [self._str(key), struct.pack("<IIQ", T_ARRAY, elem_type, len(values))]
        if elem_type == T_STRING:
            out += [self._str(v) for v in values]
        elif elem_type == T_FLOAT32:
            out.append(struct.pack("<%df" % len(values), *values))
        elif elem_type == T_INT32:
            out.append(struct.pack("<%di" % len(values), *values))
        else:
            raise ValueError("unsupported array type")
        self.kv.append(b"".join(out))

    def tensor(self, name, dims, values):
        count = 1
        for d in dims:
            count *= d
        if len(values) != count:
            raise ValueError(f"{name}: {len(values)} values for dims {dims}")
        self.tensors.append((name, dims, struct.pack("<%df" % count, *values)))

    def write(self, path):
        head = [b"GGUF", struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))]
        head += self.kv
        offset = 0
        for name, dims, data in self.tensors:
            head.append(self._str(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims))
            head.append(struct.pack("<IQ", GGML_F32, offset))
            offset += (len(data) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        blob = b"".join(head)
        blob += b"\0" * (-len(blob) % ALIGNMENT)
        with open(path, "wb") as f:
            f.write(blob)
            for _, _, data in self.tensors:
                f.write(data)
                f.write(b"\0" * (-len(data) % ALIGNMENT))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    tokens, scores, types = build_vocab()
    n_vocab, n_embd, n_layer, n_head, n_ff, n_ctx = len(tokens), 64, 2, 4, 128, 2048

    def randn(n, scale):
        return [rng.gauss(0.0, scale) for _ in range(n)]

    w = Writer()
    w.string("general.architecture", "llama")
    w.string("general.name", "swarm-tiny-test")
    w.u32("general.file_type", 0)  # all F32
    w.u32("general.alignment", ALIGNMENT)
    w.u32("llama.context_length", n_ctx)
    w.u32("llama.embedding_length", n_embd)
    w.u32("llama.block_count", n_layer)
    w.u32("llama.feed_forward_length", n_ff)
    w.u32("llama.attention.head_count", n_head)
    w.u32("llama.attention.head_count_kv", n_head)
    w.u32("llama.rope.dimension_count", n_embd // n_head)
    w.f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.u32("llama.vocab_size", n_vocab)
    w.string("tokenizer.ggml.model", "llama")
    w.array("tokenizer.ggml.tokens", T_STRING, tokens)
    w.array("tokenizer.ggml.scores", T_FLOAT32, scores)
    w.array("tokenizer.ggml.token_type", T_INT32, types)
    w.u32("tokenizer.ggml.unknown_token_id", 0)
    w.u32("tokenizer.ggml.bos_token_id", 1)
    w.u32("tokenizer.ggml.eos_token_id", 4)  # <|im_end|> ends an assistant turn
    w.boolean("tokenizer.ggml.add_bos_token", False)
    w.boolean("tokenizer.ggml.add_eos_token", False)
    w.string("tokenizer.chat_template", CHATML_TEMPLATE)

    w.tensor("token_embd.weight", [n_embd, n_vocab], randn(n_embd * n_vocab, 1.0))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.tensor(p + "attn_norm.weight", [n_embd], [1.0] * n_embd)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.tensor(p + name + ".weight", [n_embd, n_embd], randn(n_embd * n_embd, 0.15))
        w.tensor(p + "ffn_norm.weight", [n_embd], [1.0] * n_embd)
        w.tensor(p + "ffn_gate.weight", [n_embd, n_ff], randn(n_embd * n_ff, 0.15))
        w.tensor(p + "ffn_up.weight", [n_embd, n_ff], randn(n_embd * n_ff, 0.15))
        w.tensor(p + "ffn_down.weight", [n_ff, n_embd], randn(n_ff * n_embd, 0.15))
    w.tensor("output_norm.weight", [n_embd], [1.0] * n_embd)
    # Control and unknown tokens get an all-zero output row (logit 0, while the best of the few hundred random
    # rows is far above 0), so generation produces text and ends on max_tokens or a stop string rather than on
    # a random <|im_end|> in the first few tokens.
    out = []
    for t in range(n_vocab):
        if types[t] in (TT_CONTROL, TT_UNKNOWN):
            out += [0.0] * n_embd
        else:
            out += randn(n_embd, 0.5)
    w.tensor("output.weight", [n_embd, n_vocab], out)
    w.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_api (tests/fuzz/corpus_api/): small programs in
the harness's encoding (fuzz_api.c), each exercising a path the fuzzer should
start from. Run from anywhere: python3 tests/fuzz/make_corpus_api.py"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus_api")

# Opcodes (low nibble) and the session slot (high nibble).
CREATE, PREFILL, STEP, SAMPLE, RESET, SAMPLER, GENERATE, STATS, DESTROY, TOKENIZE, FORWARD, NAMES = range(12)
# Indices into the harness's tables.
BATCH = {1: 0, 2: 1, 3: 2, 0: 4, -1: 5, 65537: 6, 5: 7}
LEN = {0: 0, 1: 1, 2: 2, 17: 3, 63: 4, 64: 5, 65: 6, -1: 7, 40: 8, 8: 9}
TEMP = {0.0: 0, 1.0: 1, 0.5: 2, "tiny": 3, "huge": 4, -1.0: 5, "inf": 6, "nan": 7, 1000.0: 8}
TOPP = {1.0: 0, 0.5: 1, 0.0: 2, -0.1: 3, 1.5: 4, "nan": 5, 0.999: 7}


def op(code, slot=0):
    return bytes([(slot << 4) | code])


def create(slot, batch, max_len, algo, model=0, null_options=False):
    return op(CREATE, slot) + bytes([BATCH[batch], LEN[max_len], algo, model, 255 if null_options else 0])


def toks(ids):
    return bytes(ids)


def prefill(slot, batch, ids, logits=True):
    return op(PREFILL, slot) + bytes([len(ids)]) + toks(ids * batch) + bytes([1 if logits else 0])


def step(slot, batch, tok=7, logits=True):
    return op(STEP, slot) + toks([tok] * batch) + bytes([1 if logits else 0])


def sample(slot, batch, tok=8):
    return op(SAMPLE, slot) + toks([tok] * batch)


def sampler(slot, temp=1.0, top_k=0, top_p=1.0, seed=1, lo=0, hi=0):
    return (op(SAMPLER, slot) + bytes([TEMP[temp], top_k & 255, TOPP[top_p]]) + seed.to_bytes(4, "little")
            + bytes([lo & 255, hi & 255, 0]))


def generate(slot, batch, prompt, n_new):
    return op(GENERATE, slot) + bytes([len(prompt), n_new & 255]) + toks(prompt * batch) + bytes([1])


def tokenize(text_indices, cap, null_text=False):
    return op(TOKENIZE) + bytes([len(text_indices)] + text_indices + [cap, 255 if null_text else 0])


def forward(batch, ids, model=0):
    return op(FORWARD) + bytes([batch, len(ids)]) + toks(ids * batch) + bytes([model])


def names(name_indices, token_id, status):
    return op(NAMES) + bytes([len(name_indices)] + name_indices) + token_id.to_bytes(4, "little", signed=True) + bytes([status & 255])


seeds = {
    "generate_flash": create(0, 1, 64, 0) + sampler(0, 0.5, 4, 1.0, 7, 7, 11) + generate(0, 1, [7, 8, 9, 10] * 2, 20),
    "lazy_batch2_steps": create(0, 2, 40, 1) + prefill(0, 2, [7, 8, 9, 10, 7, 8, 9, 10, 11, 7]) + step(0, 2)
    + step(0, 2, 9, False) + sample(0, 2) + op(STATS) + bytes([1]) + op(RESET) + generate(0, 2, [7, 8], 10),
    "eager_deferred_long": create(1, 1, 64, 2, model=1) + prefill(1, 1, [7, 8, 9, 10] * 10) + step(1, 1)
    + sample(1, 1) + generate(1, 1, [7] * 30, 40),
    "greedy_and_windows": create(0, 3, 17, 0) + sampler(0, 0.0) + generate(0, 3, [9, 10], 16)
    + sampler(0, 1.0, 0, 0.999, 5, 10, 11) + generate(0, 3, [9], 17) + sampler(0, "nan") + sampler(0, 1.0, -1)
    + sampler(0, 1.0, 0, 1.5) + sampler(0, 1.0, 0, 1.0, 0, 11, 11),
    "invalid_sessions": create(0, 0, 64, 0) + create(1, 65537, 64, 0) + create(2, 1, 65, 0) + create(0, 1, 64, 3)
    + create(1, 1, -1, 0) + create(2, 1, 0, 1, null_options=True) + step(0, 1) + prefill(1, 1, [7]) + op(RESET, 0),
    "out_of_range_tokens": create(0, 1, 64, 0) + prefill(0, 1, [7, 200, 8]) + prefill(0, 1, [7, 201, 8])
    + step(0, 1, 205) + generate(0, 1, [202], 3) + prefill(0, 1, []) + generate(0, 1, [7], 0),
    "order": create(0, 1, 8, 0) + step(0, 1) + prefill(0, 1, [7, 8]) + step(0, 1) + step(0, 1) + step(0, 1)
    + step(0, 1) + step(0, 1) + step(0, 1) + step(0, 1) + op(RESET) + generate(0, 1, [7] * 8, 2) + op(DESTROY)
    + step(0, 1),
    "three_sessions": create(0, 1, 64, 0) + create(1, 2, 40, 1, model=1) + create(2, 3, 17, 2) + generate(0, 1, [7], 5)
    + generate(1, 2, [8], 5) + generate(2, 3, [9], 5) + op(DESTROY, 1) + generate(1, 1, [7], 2)
    + step(2, 3) + op(RESET, 2) + prefill(2, 3, [10] * 17),
    "tokenize": tokenize([0, 1, 2, 3, 4], 5) + tokenize([5, 6, 7, 8, 9], 2) + tokenize([0, 10, 1], 8)
    + tokenize([], 0) + tokenize([0, 1], 0) + tokenize([0], 4, null_text=True) + tokenize([14, 12, 13], 8),
    "forward_names": forward(1, [7, 8, 9]) + forward(3, [10] * 20, model=1) + forward(0, [7]) + forward(2, [])
    + forward(1, [220]) + names([0, 1, 2, 3, 4], 7, 3) + names([7, 8, 9, 10, 11], -5, -1) + names([5, 6], 999, 12),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {OUT}")

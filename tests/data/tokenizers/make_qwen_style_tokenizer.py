"""Builds the small tokenizer fixtures in this folder with HuggingFace `tokenizers`.

qwen_style.json: byte-level BPE trained here, in exactly the configuration of Qwen2/2.5/3's
tokenizer.json (NFC normalizer, Qwen's Split regex + ByteLevel pre-tokenizer, ByteLevel
post-processor and decoder, Qwen's special tokens, <think>/</think> as non-special added tokens),
with a vocabulary of a few thousand so that it stays small enough to keep in the repository.

byte_level.json: the 256 byte tokens and three special tokens, no merges (like the demo model's).

Run from anywhere: .venv/bin/python tests/data/tokenizers/make_qwen_style_tokenizer.py
The output is deterministic for a given `tokenizers` version.
"""

import json
import pathlib
import random

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

HERE = pathlib.Path(__file__).resolve().parent

QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
NON_SPECIAL = ["<think>", "</think>"]

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "It's a long way to the top if you wanna rock and roll.",
    "We'll see whether they've finished the report; I'm sure they'd tell us.",
    "Attention layers route some tokens to global memory and keep the rest local.",
    "A router decides, per token and per layer, whether global attention is worth its cost.",
    "Numbers such as 3.14159, 2718 and 1,000,000 appear in scientific writing.",
    "The committee met on Tuesday, 12 March 2024, to discuss the budget for next year.",
    "She said: \"Don't forget the keys!\" and left the building at 7:45 pm.",
    "Long documents need sliding-window attention, sparse routing and careful memory planning.",
    "Profiling shows which kernels dominate the prefill time of a 128K-token document.",
]
CJK = [
    "今天天气很好，我们去公园散步吧。",
    "机器学习模型需要大量的数据进行训练。",
    "注意力机制是现代语言模型的核心组成部分。",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "私は毎朝コーヒーを飲みながら新聞を読みます。",
    "한국어 문장도 토크나이저가 처리할 수 있어야 합니다.",
    "长上下文推理需要高效的内存管理和稀疏注意力。",
]
OTHER = [
    "Ça va très bien, merci ! L'été dernier, nous sommes allés à Montréal.",
    "Über die Brücke gehen Äpfel, Öl und Straßenbahnen.",
    "Привет, как дела? Сегодня хорошая погода.",
    "مرحبا بالعالم، هذا نص عربي قصير.",
    "नमस्ते दुनिया, यह एक छोटा हिंदी वाक्य है।",
    "Emoji: 😀 😂 👍 🎉 ❤️ 🚀 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 👋🏽",
]
CODE = [
    "def encode(self, text: str) -> list[int]:\n    return [self.vocab[t] for t in text.split()]\n",
    "for (int i = 0; i < n; ++i) {\n    sum += values[i] * weights[i];\n}\n",
    "#include <vector>\nstd::vector<float> logits(vocab_size, 0.0f);\n",
    "if __name__ == \"__main__\":\n\tmain(sys.argv[1:])\n",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY id;\n",
    "const routes = tokens.filter((t) => t.score >= threshold).map((t) => t.index);\n",
    "    \n        return x\n\n\n",
]


# Generated words widen the vocabulary beyond the sentences above.
SYLLABLES = ["ka", "lo", "mi", "ten", "ro", "sha", "ver", "qui", "ble", "tion", "pre", "ing",
             "der", "ex", "com", "pro", "ment", "al", "ous", "th", "str", "ight", "en", "un"]
HAN = ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过"
       "家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本"
       "见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话")
KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
EMOJI = ["😀", "😂", "👍", "🎉", "❤️", "🚀", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "👋🏽", "🤖", "✨"]
IDENTIFIERS = ["tokens", "router", "layer", "attention", "kv_cache", "seq_len", "hidden",
               "logits", "mask", "prefill", "window", "stride"]


def generated_line(rng):
    kind = rng.randrange(5)
    if kind == 0:
        words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
                 for _ in range(rng.randint(3, 12))]
        return " ".join(w.capitalize() if rng.random() < 0.1 else w for w in words) + "."
    if kind == 1:
        return "".join(rng.choice(HAN) for _ in range(rng.randint(4, 20))) + "。"
    if kind == 2:
        return "".join(rng.choice(KANA) for _ in range(rng.randint(4, 16))) + "、" + rng.choice(EMOJI)
    if kind == 3:
        a, b = rng.sample(IDENTIFIERS, 2)
        return f"    {a} = {b}[{rng.randint(0, 4096)}] + {rng.random():.4f}  # {rng.choice(SYLLABLES)}"
    return " ".join(str(rng.randint(0, 10 ** rng.randint(1, 12))) for _ in range(rng.randint(1, 6)))


def corpus(lines=20000):
    rng = random.Random(20240611)
    pools = [ENGLISH, CJK, OTHER, CODE]
    for _ in range(lines):
        if rng.random() < 0.5:
            parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 4))]
        else:
            parts = [generated_line(rng) for _ in range(rng.randint(1, 4))]
        yield (" " if rng.random() < 0.7 else "\n").join(parts)


# Qwen's tokenizer.json writes these settings (the Python decoder object does not keep them).
QWEN_DECODER = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                "use_regex": False}


def save(tok, name):
    data = json.loads(tok.to_str())
    data["decoder"] = QWEN_DECODER
    with open(HERE / name, "w", encoding="utf-8") as out:
        json.dump(data, out, ensure_ascii=False, indent=1)
        out.write("\n")


def qwen_style_pipeline(tok):
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                              use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)


def add_qwen_tokens(tok):
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in NON_SPECIAL])


def make_qwen_style():
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False, fuse_unk=False))
    qwen_style_pipeline(tok)
    trainer = trainers.BpeTrainer(vocab_size=4000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    add_qwen_tokens(tok)
    save(tok, "qwen_style.json")


def make_byte_level():
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    # Byte order: the token of byte b has id b.
    vocab = {}
    table = _bytes_to_unicode()
    for b in range(256):
        vocab[table[b]] = b
    assert set(vocab) == set(alphabet)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                                 use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                              use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    save(tok, "byte_level.json")


def _bytes_to_unicode():
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD))
                 + list(range(0xAE, 0x100)))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


if __name__ == "__main__":
    make_qwen_style()
    make_byte_level()

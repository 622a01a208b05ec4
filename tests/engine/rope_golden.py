"""Reference RoPE parameters from the installed transformers, for test_rope.

Usage: rope_golden.py OUT.json

Each case is a config.json dict and a prefill length T. The reference runs the model's own rotary
embedding module (Qwen2RotaryEmbedding / Qwen3RotaryEmbedding) forward over positions 0..T-1,
so dynamic NTK goes through transformers' real update path, then records the inv_freq buffer
and attention scaling it ends up with. The C++ test parses the same config dict with
parse_model_config and compares compute_rope(config, T) with these numbers.
"""

import json
import sys

import torch
import transformers
from transformers import Qwen2Config, Qwen3Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding
from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding


def base_config(head_dim, theta, model_type):
    """A tiny model whose head_dim is 64 or 128; qwen2 derives it, qwen3 states it."""
    config = {
        "model_type": model_type,
        "vocab_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "max_position_embeddings": 4096,
    }
    if model_type == "qwen2":
        config.update(hidden_size=head_dim * 4, num_attention_heads=4, num_key_value_heads=2)
    else:
        config.update(hidden_size=96, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=head_dim)
    if theta is not None:
        config["rope_theta"] = theta
    return config


def with_rope(config, rope, spelling="rope_scaling"):
    """Puts `rope` in the legacy rope_scaling dict or in transformers 5's rope_parameters."""
    config = dict(config)
    if spelling == "rope_scaling":
        config["rope_scaling"] = dict(rope)
    else:
        parameters = dict(rope)
        parameters["rope_theta"] = config.pop("rope_theta", 10000.0)
        config["rope_parameters"] = parameters
    return config


def cases():
    out = []

    def add(name, config, seq_len=16):
        out.append({"name": name, "config": config, "seq_len": seq_len})

    shapes = [(64, "qwen2"), (128, "qwen3")]
    thetas = [10000.0, 1000000.0, 500000]  # an integer theta is valid JSON too
    for head_dim, model_type in shapes:
        for theta in thetas:
            tag = f"d{head_dim}_theta{theta}"
            config = base_config(head_dim, theta, model_type)
            add(f"default_{tag}", config)
            for factor in [1.0, 1.5, 2.0, 4.0, 3.3]:
                add(f"linear{factor}_{tag}", with_rope(config, {"rope_type": "linear",
                                                                "factor": factor}))
            for factor in [2.0, 4.0, 3.3]:
                rope = {"rope_type": "dynamic", "factor": factor}
                for seq_len in [100, 4096, 4097, 5000, 12345, 40000]:
                    add(f"dynamic{factor}_T{seq_len}_{tag}", with_rope(config, rope), seq_len)
            for factor in [1.0, 2.0, 4.0, 8.0, 3.3]:
                for original in [None, 1024, 4096]:
                    rope = {"rope_type": "yarn", "factor": factor}
                    if original is not None:
                        rope["original_max_position_embeddings"] = original
                    add(f"yarn{factor}_orig{original}_{tag}", with_rope(config, rope))
            yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}
            add(f"yarn_notruncate_{tag}", with_rope(config, {**yarn, "truncate": False}))
            add(f"yarn_mscale_{tag}",
                with_rope(config, {**yarn, "mscale": 1.0, "mscale_all_dim": 0.8}))
            add(f"yarn_mscale_equal_{tag}",
                with_rope(config, {**yarn, "mscale": 0.707, "mscale_all_dim": 0.707}))
            add(f"yarn_mscale_only_{tag}", with_rope(config, {**yarn, "mscale": 0.707}))
            add(f"yarn_attention_factor_{tag}",
                with_rope(config, {**yarn, "attention_factor": 1.25}))
            add(f"yarn_betas_{tag}",
                with_rope(config, {**yarn, "beta_fast": 16.0, "beta_slow": 2.0}))
            add(f"yarn_betas_zero_{tag}",
                with_rope(config, {**yarn, "beta_fast": 0, "beta_slow": 0}))
            add(f"yarn_factor_null_{tag}", with_rope(config, {**yarn, "factor": None}))
            add(f"yarn_params_{tag}", with_rope(config, yarn, spelling="rope_parameters"))
            top_level = with_rope(config, yarn)
            top_level["original_max_position_embeddings"] = 2048
            add(f"yarn_top_level_original_{tag}", top_level)
            legacy = with_rope(config, {"type": "yarn", "factor": 2.0,
                                        "original_max_position_embeddings": 2048})
            add(f"yarn_legacy_type_{tag}", legacy)
            add(f"dynamic_params_T9000_{tag}",
                with_rope(config, {"rope_type": "dynamic", "factor": 2.0},
                          spelling="rope_parameters"), 9000)
    return out


def reference(case):
    config_dict = case["config"]
    if config_dict["model_type"] == "qwen2":
        config, rotary_class = Qwen2Config.from_dict(config_dict), Qwen2RotaryEmbedding
    else:
        config, rotary_class = Qwen3Config.from_dict(config_dict), Qwen3RotaryEmbedding
    rotary = rotary_class(config)
    positions = torch.arange(case["seq_len"], dtype=torch.int64)[None, :]
    with torch.no_grad():
        rotary(torch.zeros(1, dtype=torch.float32), positions)
    return {
        **case,
        "inv_freq": [float(v) for v in rotary.inv_freq.to(torch.float32).tolist()],
        "attention_scaling": float(rotary.attention_scaling),
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: rope_golden.py OUT.json")
    transformers.logging.set_verbosity_error()
    results = [reference(case) for case in cases()]
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "cases": results}, f)


if __name__ == "__main__":
    main()

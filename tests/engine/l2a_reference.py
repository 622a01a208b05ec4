#!/usr/bin/env python3
"""A dense reference of the L2A layer (the design notes' L2A.md) for test_l2a_semantics.

Written from the L2A description alone, in float64, with full T x T masks: slow and simple on
purpose, so that it shares no code and no cleverness with the engine.

  l2a_reference.py make OUT_DIR
      Writes small random l2a_qwen3 / l2a_qwen2 checkpoint folders OUT_DIR/<case>/ (config.json +
      safetensors), OUT_DIR/cases.json and OUT_DIR/stamp. Skipped when the stamp matches this
      script; runs under a file lock (every test process calls it).
  l2a_reference.py run REQUEST.json
      REQUEST: {"model": dir, "tokens": [ids], "routing": "learned" | "global" | "local" |
      "given", "decisions": [[0/1] * T] * L (for "given"), "threshold": theta (optional),
      "prune": [layers] (optional), "out": file}. Writes to "out" a safetensors file with
      logits F32 [T, V], router_logits F32 [L, T] (z), rule_decisions U8 [L, T]
      (z >= tau * logit(theta), whatever was applied), decisions U8 [L, T] (applied; 0 in pruned
      layers) and token_nll F32 [T] (NaN at 0).
  l2a_reference.py selftest OUT_DIR
      Checks this reference against transformers' Qwen2/Qwen3 where L2A reduces to them: all
      local with W >= T is the base model on the local weights; all global with a zero local
      output projection is the base model on the global weights. Also checks the window mask
      against a per-token loop.

Exit status 77: a needed Python package is missing (the C++ test skips).
"""

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import sys
from pathlib import Path

SKIP_EXIT_CODE = 77

# Shared by every case unless overridden. Local and global weights are drawn independently so
# that routing changes the output.
BASE_CASE = dict(model_type="l2a_qwen3", hidden=48, heads=4, kv_heads=2, head_dim=16, layers=3,
                 inter=80, vocab=120, window=8, temp=0.1, threshold=0.5, sigmoid_linear=True,
                 sig_input_type="hidden_linearproj", rope_theta=10000.0, tie=False,
                 router="random", seed=1, shards=1, rope_style="legacy")

CASES = [
    dict(name="l2a_qwen3"),
    dict(name="l2a_qwen3_w4", window=4),
    dict(name="l2a_qwen3_w1", window=1),
    dict(name="l2a_qwen3_w1000", window=1000),
    dict(name="l2a_qwen3_temp1", temp=1.0, seed=2),
    dict(name="l2a_qwen3_firstdim", sig_input_type="hidden_firstdim", seed=3),
    # The reference construction has no router layer when sigmoid_linear is false.
    dict(name="l2a_qwen3_mean", sigmoid_linear=False, seed=4),
    dict(name="l2a_qwen3_zero_router", router="zero", seed=5),
    # Qwen2: q/k/v biases in both attention sets, no QK-norm, head_dim = hidden / heads, GQA 4,
    # tied embeddings, two shards and the transformers-5 style rope_parameters.
    dict(name="l2a_qwen2", model_type="l2a_qwen2", hidden=64, heads=4, kv_heads=1, head_dim=16,
         inter=96, window=6, temp=1.0, rope_theta=1e6, tie=True, seed=6, shards=2,
         rope_style="parameters"),
]


def case_spec(case):
    spec = dict(BASE_CASE)
    spec.update(case)
    return spec


def stamp_text():
    source = Path(__file__).read_bytes()
    versions = {m: importlib.metadata.version(m) for m in ("torch", "safetensors", "numpy")}
    return hashlib.sha256(source).hexdigest() + " " + json.dumps(versions, sort_keys=True)


# ----------------------------------------------------------------------------------------------
# Checkpoints


def config_json(spec):
    config = {
        "architectures": ["L2AQwen3ForCausalLM" if spec["model_type"] == "l2a_qwen3"
                          else "L2AQwen2ForCausalLM"],
        "model_type": spec["model_type"],
        "vocab_size": spec["vocab"],
        "hidden_size": spec["hidden"],
        "intermediate_size": spec["inter"],
        "num_hidden_layers": spec["layers"],
        "num_attention_heads": spec["heads"],
        "num_key_value_heads": spec["kv_heads"],
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": spec["tie"],
        "torch_dtype": "float32",
        "attention_dropout": 0.0,
        "sliding_window": spec["window"],
        "sigmoid_temp": spec["temp"],
        "sigmoid_threshold": spec["threshold"],
        "sigmoid_linear": spec["sigmoid_linear"],
        "sig_input_type": spec["sig_input_type"],
        "l2a_initfrombase": False,
    }
    if spec["model_type"] == "l2a_qwen3":
        config["head_dim"] = spec["head_dim"]
        config["attention_bias"] = False
    if spec["rope_style"] == "legacy":
        config["rope_theta"] = spec["rope_theta"]
        config["rope_scaling"] = None
    else:
        config["rope_parameters"] = {"rope_type": "default", "rope_theta": spec["rope_theta"]}
    return config


def random_weights(spec):
    import torch

    generator = torch.Generator().manual_seed(spec["seed"])
    d, D, H, Hkv = spec["hidden"], spec["head_dim"], spec["heads"], spec["kv_heads"]
    qwen2 = spec["model_type"] == "l2a_qwen2"

    def linear(out_features, in_features):
        return torch.randn(out_features, in_features, generator=generator) / math.sqrt(in_features)

    def norm(size):
        return 0.6 + 0.8 * torch.rand(size, generator=generator)

    def bias(size):
        return 0.3 * torch.randn(size, generator=generator)

    # Small embeddings keep tied-head logits in a range where 1e-4 is a fair float32 tolerance.
    embedding = 0.3 * torch.randn(spec["vocab"], d, generator=generator)
    weights = {"model.embed_tokens.weight": embedding, "model.norm.weight": norm(d)}
    if not spec["tie"]:
        weights["lm_head.weight"] = linear(spec["vocab"], d)
    for i in range(spec["layers"]):
        p = f"model.layers.{i}."
        for n in ("input_layernorm", "input_layernorm_global", "post_attention_layernorm"):
            weights[p + n + ".weight"] = norm(d)
        for suffix in ("", "_global"):
            weights[p + f"self_attn.q_proj{suffix}.weight"] = linear(H * D, d)
            weights[p + f"self_attn.k_proj{suffix}.weight"] = linear(Hkv * D, d)
            weights[p + f"self_attn.v_proj{suffix}.weight"] = linear(Hkv * D, d)
            weights[p + f"self_attn.o_proj{suffix}.weight"] = linear(d, H * D)
            if qwen2:
                weights[p + f"self_attn.q_proj{suffix}.bias"] = bias(H * D)
                weights[p + f"self_attn.k_proj{suffix}.bias"] = bias(Hkv * D)
                weights[p + f"self_attn.v_proj{suffix}.bias"] = bias(Hkv * D)
            else:
                weights[p + f"self_attn.q_norm{suffix}.weight"] = norm(D)
                weights[p + f"self_attn.k_norm{suffix}.weight"] = norm(D)
        if spec["sigmoid_linear"]:
            router = linear(1, d) if spec["router"] == "random" else torch.zeros(1, d)
            weights[p + "self_attn.sigmoid_linear.weight"] = router
        weights[p + "mlp.gate_proj.weight"] = linear(spec["inter"], d)
        weights[p + "mlp.up_proj.weight"] = linear(spec["inter"], d)
        weights[p + "mlp.down_proj.weight"] = linear(d, spec["inter"])
    return {name: tensor.float().contiguous() for name, tensor in weights.items()}


def write_checkpoint(spec, folder):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.safetensors*"):
        old.unlink()
    (folder / "config.json").write_text(json.dumps(config_json(spec), indent=2) + "\n")
    weights = random_weights(spec)
    names = sorted(weights)
    if spec["shards"] == 1:
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    per_shard = math.ceil(len(names) / spec["shards"])
    for s in range(spec["shards"]):
        file_name = f"model-{s + 1:05d}-of-{spec['shards']:05d}.safetensors"
        shard = {n: weights[n] for n in names[s * per_shard:(s + 1) * per_shard]}
        save_file(shard, str(folder / file_name), metadata={"format": "pt"})
        weight_map.update({n: file_name for n in shard})
    total = sum(t.numel() * 4 for t in weights.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def make(out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp_path = out_dir / "stamp"
    expected = stamp_text()
    with open(out_dir / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp_path.exists() and stamp_path.read_text() == expected:
            return 0
        stamp_path.unlink(missing_ok=True)
        for case in CASES:
            write_checkpoint(case_spec(case), out_dir / case["name"])
        (out_dir / "cases.json").write_text(json.dumps([c["name"] for c in CASES]) + "\n")
        stamp_path.write_text(expected)
    return 0


# ----------------------------------------------------------------------------------------------
# The model, dense and in float64


def window_mask(T, W):
    """[T, T] bool: query t sees keys max(0, t - W + 1) .. t."""
    import torch

    t = torch.arange(T)
    return (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - W)


class L2AModel:
    def __init__(self, config, weights):
        self.config = config
        self.w = weights
        self.qwen3 = config["model_type"] == "l2a_qwen3"
        if config["model_type"] not in ("l2a_qwen3", "l2a_qwen2"):
            raise ValueError(f"not an L2A model: {config['model_type']}")
        self.d = config["hidden_size"]
        self.H = config["num_attention_heads"]
        self.Hkv = config["num_key_value_heads"]
        self.D = config.get("head_dim") or self.d // self.H
        self.L = config["num_hidden_layers"]
        self.eps = config["rms_norm_eps"]
        self.W = config["sliding_window"]
        self.tau = config.get("sigmoid_temp", 1.0)
        self.theta = config.get("sigmoid_threshold", 0.5)
        self.sigmoid_linear = config.get("sigmoid_linear", True)
        self.sig_input_type = config.get("sig_input_type", "hidden_linearproj")
        if self.sig_input_type not in ("hidden_linearproj", "hidden_firstdim"):
            raise ValueError(f"unknown sig_input_type {self.sig_input_type}")
        rope = config.get("rope_parameters") or {}
        self.rope_theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
        if rope.get("rope_type", "default") != "default" or config.get("rope_scaling"):
            raise ValueError("the reference implements plain RoPE only")

    @staticmethod
    def load(folder):
        import torch
        from safetensors.torch import load_file

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        index = folder / "model.safetensors.index.json"
        files = (sorted(set(json.loads(index.read_text())["weight_map"].values()))
                 if index.exists() else ["model.safetensors"])
        weights = {}
        for name in files:
            weights.update(load_file(str(folder / name)))
        return L2AModel(config, {k: v.to(torch.float64) for k, v in weights.items()})

    def rms_norm(self, x, weight):
        return x / (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt() * weight

    def rope(self, x, positions):
        # x: [T, heads, D]; rotate the two halves of each head (the Qwen convention).
        import torch

        half = self.D // 2
        inv_freq = self.rope_theta ** (-torch.arange(half, dtype=torch.float64) * 2 / self.D)
        angle = positions[:, None].double() * inv_freq[None, :]
        cos, sin = angle.cos()[:, None, :], angle.sin()[:, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    def attention(self, layer, suffix, x, allowed):
        """allowed: [T, T] bool, allowed[t, j] = query t may attend key j."""
        import torch

        p = f"model.layers.{layer}.self_attn."
        T = x.shape[0]

        def project(name, heads):
            y = x @ self.w[p + f"{name}_proj{suffix}.weight"].T
            b = self.w.get(p + f"{name}_proj{suffix}.bias")
            if b is not None:
                y = y + b
            return y.reshape(T, heads, self.D)

        q, k, v = project("q", self.H), project("k", self.Hkv), project("v", self.Hkv)
        if self.qwen3:
            q = self.rms_norm(q, self.w[p + f"q_norm{suffix}.weight"])
            k = self.rms_norm(k, self.w[p + f"k_norm{suffix}.weight"])
        positions = torch.arange(T)
        q, k = self.rope(q, positions), self.rope(k, positions)
        group = self.H // self.Hkv
        kv_head = torch.arange(self.H) // group
        scores = torch.einsum("thd,shd->hts", q, k[:, kv_head]) / math.sqrt(self.D)
        scores = scores.masked_fill(~allowed[None], float("-inf"))
        out = torch.einsum("hts,shd->thd", scores.softmax(-1), v[:, kv_head])
        return out.reshape(T, self.H * self.D) @ self.w[p + f"o_proj{suffix}.weight"].T

    def router_logits(self, layer, u):
        if self.sig_input_type == "hidden_firstdim":
            return u[:, 0]
        if not self.sigmoid_linear:
            return u.mean(-1)
        return u @ self.w[f"model.layers.{layer}.self_attn.sigmoid_linear.weight"][0]

    def mlp(self, layer, x):
        import torch

        p = f"model.layers.{layer}.mlp."
        gate = x @ self.w[p + "gate_proj.weight"].T
        up = x @ self.w[p + "up_proj.weight"].T
        return (torch.nn.functional.silu(gate) * up) @ self.w[p + "down_proj.weight"].T

    def forward(self, tokens, routing, given=None, theta=None, prune=()):
        import torch

        theta = self.theta if theta is None else theta
        cutoff = self.tau * math.log(theta / (1 - theta))
        T = len(tokens)
        causal = window_mask(T, T)
        local = window_mask(T, self.W)

        x = self.w["model.embed_tokens.weight"][torch.tensor(tokens)]
        router_logits, rule, applied = [], [], []
        for i in range(self.L):
            p = f"model.layers.{i}."
            s = self.attention(i, "", self.rms_norm(x, self.w[p + "input_layernorm.weight"]),
                               local)
            h = x + s
            u = self.rms_norm(h, self.w[p + "input_layernorm_global.weight"])
            z = self.router_logits(i, u)
            by_rule = z >= cutoff
            if routing == "learned":
                d = by_rule.clone()
            elif routing == "global":
                d = torch.ones(T, dtype=torch.bool)
            elif routing == "local":
                d = torch.zeros(T, dtype=torch.bool)
            elif routing == "given":
                d = torch.tensor(given[i], dtype=torch.bool)
            else:
                raise ValueError(f"unknown routing {routing}")
            if i in prune:
                d = torch.zeros(T, dtype=torch.bool)
            a = self.attention(i, "_global", u, causal)
            h2 = h + d[:, None].double() * a
            x = h2 + self.mlp(i, self.rms_norm(h2, self.w[p + "post_attention_layernorm.weight"]))
            router_logits.append(z)
            rule.append(by_rule)
            applied.append(d)

        tied = self.config.get("tie_word_embeddings", False)
        head = self.w["model.embed_tokens.weight" if tied else "lm_head.weight"]
        logits = self.rms_norm(x, self.w["model.norm.weight"]) @ head.T
        return (logits, torch.stack(router_logits), torch.stack(rule), torch.stack(applied))


def token_nll(logits, tokens):
    import torch

    nll = torch.full((len(tokens),), float("nan"), dtype=torch.float64)
    log_probs = logits.log_softmax(-1)
    nll[1:] = -log_probs[:-1].gather(1, torch.tensor(tokens[1:])[:, None])[:, 0]
    return nll


def run(request_path):
    import numpy as np
    from safetensors.numpy import save_file

    request = json.loads(Path(request_path).read_text())
    model = L2AModel.load(request["model"])
    tokens = request["tokens"]
    logits, z, rule, applied = model.forward(
        tokens, request["routing"], given=request.get("decisions"),
        theta=request.get("threshold"), prune=set(request.get("prune", [])))
    save_file({"logits": logits.float().numpy(),
               "router_logits": z.float().numpy(),
               "rule_decisions": rule.numpy().astype(np.uint8),
               "decisions": applied.numpy().astype(np.uint8),
               "token_nll": token_nll(logits, tokens).float().numpy()},
              request["out"])
    return 0


# ----------------------------------------------------------------------------------------------
# Self-test against transformers


def base_model_logits(l2a, suffix, input_norm, tokens):
    """transformers' Qwen2/Qwen3 built from one attention set of an L2A model."""
    import torch
    import transformers

    c = l2a.config
    common = dict(vocab_size=c["vocab_size"], hidden_size=l2a.d,
                  intermediate_size=c["intermediate_size"], num_hidden_layers=l2a.L,
                  num_attention_heads=l2a.H, num_key_value_heads=l2a.Hkv,
                  max_position_embeddings=c["max_position_embeddings"],
                  rms_norm_eps=l2a.eps, tie_word_embeddings=c["tie_word_embeddings"],
                  rope_parameters={"rope_type": "default", "rope_theta": l2a.rope_theta},
                  attn_implementation="eager")
    if l2a.qwen3:
        model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(head_dim=l2a.D, **common))
    else:
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    state = {}
    for name, tensor in l2a.w.items():
        if ".self_attn." in name and "sigmoid_linear" not in name:
            base_name = name.replace("_global.", ".")
            if (suffix == "_global") == ("_global." in name):
                state[base_name] = tensor
        elif "input_layernorm" in name:
            if name.endswith(f"{input_norm}.weight"):
                state[name.replace("input_layernorm_global", "input_layernorm")] = tensor
        elif "sigmoid_linear" not in name:
            state[name] = tensor
    state = {k: v.float() for k, v in state.items()}
    if c["tie_word_embeddings"]:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "rotary" not in m]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor([tokens])).logits[0].double()


def attention_by_loop(l2a, layer, x, window):
    """Local attention one query at a time over an explicit key slice."""
    import torch

    T = x.shape[0]
    rows = []
    for t in range(T):
        first = max(0, t - window + 1)
        allowed = torch.zeros(T, T, dtype=torch.bool)
        allowed[t, first:t + 1] = True
        # Rows other than t attend nothing and come out NaN; only row t is kept.
        rows.append(l2a.attention(layer, "", x, allowed)[t])
    return torch.stack(rows)


def selftest(out_dir):
    if importlib.util.find_spec("transformers") is None:
        print("l2a_reference.py selftest: transformers is not installed", file=sys.stderr)
        return SKIP_EXIT_CODE
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    make(out_dir)
    failures = []

    def check(what, a, b, tolerance):
        difference = (a - b).abs().max().item()
        status = "ok" if difference <= tolerance else "FAILED"
        print(f"{what}: max |difference| {difference:.3g} ({status})")
        if not difference <= tolerance:
            failures.append(what)

    generator = torch.Generator().manual_seed(5)
    for name in ("l2a_qwen3_w1000", "l2a_qwen2"):
        l2a = L2AModel.load(out_dir / name)
        l2a.W = 1000
        tokens = torch.randint(0, l2a.config["vocab_size"], (37,), generator=generator).tolist()
        logits, *_ = l2a.forward(tokens, "local")
        check(f"{name}: all-local, W >= T == base model (local weights)", logits,
              base_model_logits(l2a, "", "input_layernorm", tokens), 1e-4)

        for i in range(l2a.L):
            l2a.w[f"model.layers.{i}.self_attn.o_proj.weight"].zero_()
        logits, *_ = l2a.forward(tokens, "global")
        check(f"{name}: all-global, zero local output == base model (global weights)", logits,
              base_model_logits(l2a, "_global", "input_layernorm_global", tokens), 1e-4)

    l2a = L2AModel.load(out_dir / "l2a_qwen3_w4")
    x = torch.randn(23, l2a.d, generator=generator, dtype=torch.float64)
    for window in (1, 4, 30):
        mask = window_mask(23, window)
        check(f"window {window}: mask == per-token key slice", l2a.attention(0, "", x, mask),
              attention_by_loop(l2a, 0, x, window), 1e-12)
    return 1 if failures else 0


def main():
    missing = [m for m in ("torch", "safetensors", "numpy") if importlib.util.find_spec(m) is None]
    if missing:
        print("l2a_reference.py: missing Python packages: " + ", ".join(missing), file=sys.stderr)
        return SKIP_EXIT_CODE
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        return make(Path(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        return run(sys.argv[2])
    if len(sys.argv) == 3 and sys.argv[1] == "selftest":
        return selftest(Path(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

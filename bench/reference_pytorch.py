#!/usr/bin/env python3
"""PyTorch eager + LoRA reference for `eztinker bench` (issue 7, rows 1-3 plus decode).

A plain eager Qwen2 written the way HF transformers' modeling_qwen2.py (eager attention) and
PEFT's LoraLayer compute it: bf16/fp32 frozen base, fp32 LoRA A/B on q,k,v,o,gate,up,down
(r=8, alpha=16), full-vocabulary logits then cross-entropy, torch.optim.AdamW over the LoRA
parameters, greedy / multinomial decoding with a growing (torch.cat) KV cache as HF's
DynamicCache does. Needs only Debian's python3-torch (no transformers, no safetensors package):
the model directory is read with a minimal safetensors parser.

Prints progress to stderr and one JSON object (same keys as `eztinker bench --json`) last on
stdout. Run: /usr/bin/python3 bench/reference_pytorch.py --model DIR --dtype bf16 --threads 2
With --serve it loads the model and then runs one repeat per command line on stdin, which is
how `eztinker bench --reference` interleaves the two sides repeat by repeat.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
          "I64": torch.int64, "I32": torch.int32}


def load_safetensors(path):
    """name -> tensor from one .safetensors file (8-byte header length, JSON header, data)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = bytearray(f.read())
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = torch.frombuffer(data, dtype=DTYPES[info["dtype"]], count=(end - begin) //
                             torch.tensor([], dtype=DTYPES[info["dtype"]]).element_size(),
                             offset=begin)
        out[name] = t.view(info["shape"])
    return out


def load_state(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    state = {}
    for f in files:
        state.update(load_safetensors(os.path.join(model_dir, f)))
    return state


class LoraLinear(torch.nn.Module):
    """PEFT LoraLayer: base(x) + B(A(x)) * scaling, LoRA in fp32, base frozen."""

    def __init__(self, weight, bias, r, alpha):
        super().__init__()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)
        out_f, in_f = weight.shape
        self.lora_A = torch.nn.Parameter(torch.empty(r, in_f))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = torch.nn.Parameter(torch.zeros(out_f, r))
        self.scaling = alpha / r

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        d = F.linear(F.linear(x.to(self.lora_A.dtype), self.lora_A), self.lora_B) * self.scaling
        return (y + d).to(y.dtype)


def rms_norm(x, w, eps):
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w * xf.to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Qwen2(torch.nn.Module):
    def __init__(self, cfg, state, dtype, r=8, alpha=16):
        super().__init__()
        self.cfg = cfg
        self.dtype = dtype
        g = lambda k: state[k].to(dtype)
        self.embed = g("model.embed_tokens.weight")
        self.lm_head = self.embed if cfg.get("tie_word_embeddings", False) else g("lm_head.weight")
        self.norm = g("model.norm.weight")
        self.layers = torch.nn.ModuleList()
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            layer = torch.nn.Module()
            for name, has_bias in (("q_proj", True), ("k_proj", True), ("v_proj", True),
                                   ("o_proj", False)):
                setattr(layer, name, LoraLinear(g(p + f"self_attn.{name}.weight"),
                                                g(p + f"self_attn.{name}.bias") if has_bias else None,
                                                r, alpha))
            for name in ("gate_proj", "up_proj", "down_proj"):
                setattr(layer, name, LoraLinear(g(p + f"mlp.{name}.weight"), None, r, alpha))
            layer.ln1 = g(p + "input_layernorm.weight")
            layer.ln2 = g(p + "post_attention_layernorm.weight")
            self.layers.append(layer)
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg.get("num_key_value_heads", self.nh)
        self.hd = cfg["hidden_size"] // self.nh
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        theta = cfg.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.hd, 2).float() / self.hd))

    def lora_parameters(self):
        return [p for n, p in self.named_parameters() if "lora_" in n]

    def forward(self, ids, cache=None):
        B, T = ids.shape
        past = 0 if cache is None or not cache else cache[0][0].shape[2]
        pos = torch.arange(past, past + T).float()
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)
        h = F.embedding(ids, self.embed)
        mask = None
        if T > 1:
            mask = torch.full((T, past + T), float("-inf")).triu(past + 1)
        for li, l in enumerate(self.layers):
            x = rms_norm(h, l.ln1, self.eps)
            q = l.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
            k = l.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
            v = l.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if cache is not None:
                if len(cache) > li:
                    k = torch.cat([cache[li][0], k], 2)
                    v = torch.cat([cache[li][1], v], 2)
                    cache[li] = (k, v)
                else:
                    cache.append((k, v))
            rep = self.nh // self.nkv
            k = k.repeat_interleave(rep, 1)
            v = v.repeat_interleave(rep, 1)
            s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
            if mask is not None:
                s = s + mask
            a = torch.matmul(s.softmax(-1, dtype=torch.float32).to(q.dtype), v)
            h = h + l.o_proj(a.transpose(1, 2).reshape(B, T, -1))
            x = rms_norm(h, l.ln2, self.eps)
            h = h + l.down_proj(F.silu(l.gate_proj(x)) * l.up_proj(x))
        return rms_norm(h, self.norm, self.eps)

    def logits(self, h):
        return F.linear(h, self.lm_head).float()


def stats(v):
    v = sorted(v)
    n = len(v)
    med = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return {"median": med, "min": v[0], "max": v[-1]}


def bench_tokens(n, salt, vocab):
    span = min(vocab - 1, 50000)
    return [1 + (i * 7919 + salt * 104729) % span for i in range(n)]


class Reference:
    """The reference's rows, one timed repeat per call (each returns {row: value})."""

    def __init__(self, model_dir, dtype_name):
        self.dtype_name = dtype_name
        dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.model = Qwen2(cfg, load_state(model_dir), dtype)
        self.vocab = cfg["vocab_size"]
        self.params = self.model.lora_parameters()
        self.opt = torch.optim.AdamW(self.params, lr=1e-5, weight_decay=0.0)
        self.one = [bench_tokens(256, 1, self.vocab)]
        self.four = [bench_tokens(128, 10 + i, self.vocab) for i in range(4)]
        self.prompt = bench_tokens(32, 99, self.vocab)

    def fb(self, batch):
        ids = torch.tensor(batch)
        h = self.model(ids)
        loss = F.cross_entropy(self.model.logits(h)[:, :-1].reshape(-1, self.vocab),
                               ids[:, 1:].reshape(-1))
        loss.backward()

    def step(self):
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=False)

    def train_repeat(self):
        t = time.perf_counter(); self.fb(self.one); t1 = time.perf_counter() - t
        t = time.perf_counter(); self.step(); to = time.perf_counter() - t
        t = time.perf_counter(); self.fb(self.four); t4 = time.perf_counter() - t
        self.step()
        with torch.no_grad():
            t = time.perf_counter()
            ids = torch.tensor(self.one)
            F.cross_entropy(self.model.logits(self.model(ids))[:, :-1].reshape(-1, self.vocab),
                            ids[:, 1:].reshape(-1))
            tf = time.perf_counter() - t
        print(f"  [pytorch {self.dtype_name}] fb1 {256 / t1:.1f} fb4 {512 / t4:.1f} "
              f"fwd {256 / tf:.1f} optim {to * 1e3:.2f} ms", file=sys.stderr)
        return {"forward_backward_1x256_tok_s": 256 / t1, "forward_backward_4x128_tok_s": 512 / t4,
                "forward_1x256_tok_s": 256 / tf, "optim_step_ms": to * 1e3}

    @torch.no_grad()
    def generate(self, n, greedy, new_tokens=64):
        model, cache = self.model, []
        h = model(torch.tensor([self.prompt]), cache)
        logits = model.logits(h[:, -1])
        if n > 1:
            cache[:] = [(k.expand(n, -1, -1, -1).contiguous(),
                         v.expand(n, -1, -1, -1).contiguous()) for k, v in cache]
            logits = logits.expand(n, -1)
        for _ in range(new_tokens - 1):  # the prefill already produced the first token
            tok = logits.argmax(-1) if greedy else torch.multinomial(logits.softmax(-1), 1)[:, 0]
            h = model(tok[:, None], cache)
            logits = model.logits(h[:, -1])

    def decode_repeat(self):
        t = time.perf_counter(); self.generate(1, True); t1 = time.perf_counter() - t
        # stopped after the first token: the 63 steps after it are llama-bench's tg figure
        t = time.perf_counter(); self.generate(1, True, 1); t_first = time.perf_counter() - t
        t = time.perf_counter(); self.generate(4, False); t4 = time.perf_counter() - t
        print(f"  [pytorch {self.dtype_name}] decode b1 {64 / t1:.1f} "
              f"(steps {63 / (t1 - t_first):.1f}) 4 samples {256 / t4:.1f}", file=sys.stderr)
        return {"sample_batch1_tok_s": 64 / t1, "decode_steps_batch1_tok_s": 63 / (t1 - t_first),
                "sample_4_total_tok_s": 256 / t4}


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def serve(ref):
    """One command per stdin line, one JSON line back per command:
    "train" / "decode": one timed repeat of those rows; "peak_rss"; "quit"."""
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "train":
            out = ref.train_repeat()
        elif cmd == "decode":
            out = ref.decode_repeat()
        elif cmd == "peak_rss":
            out = {"peak_rss": peak_rss()}
        elif cmd == "quit":
            break
        else:
            out = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows", default="all")
    ap.add_argument("--serve", action="store_true",
                    help="take commands on stdin (eztinker bench pairs each of its repeats "
                         "with one of these)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    ref = Reference(a.model, a.dtype)
    if a.serve:
        serve(ref)
        return

    out = {}
    for kind, repeat in (("train", ref.train_repeat), ("decode", ref.decode_repeat)):
        if a.rows not in ("all", kind):
            continue
        rows = {}
        for r in range(a.repeats + 1):  # r == 0 is the warm-up
            values = repeat()
            if r > 0:
                for k, v in values.items():
                    rows.setdefault(k, []).append(v)
        out.update({k: stats(v) for k, v in rows.items()})
    out["peak_rss"] = peak_rss()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

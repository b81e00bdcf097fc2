#!/usr/bin/env python3
"""The peer Kiln is measured against: the same Llama training step in PyTorch.

A plain PyTorch Llama (RMSNorm, RoPE rotate-half, causal GQA attention, SwiGLU,
tied classifier) trained with torch.optim.AdamW on synthetic tokens: forward +
backward + optimizer step, timed after warm-up. Prints one JSON line like
`kiln bench --json`. Used for BENCHMARKS.md, run in the same session as Kiln.

  python3 bench/peer_pytorch.py --model stories110M --batch 4 --seq 256 --steps 3
  (--device cuda --compile --bf16 on a GPU machine)
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

PRESETS = {
    "stories260K": dict(dim=64, n_layers=5, n_heads=8, n_kv_heads=4, hidden_dim=172, vocab_size=512),
    "stories15M": dict(dim=288, n_layers=6, n_heads=6, n_kv_heads=6, hidden_dim=768, vocab_size=32000),
    "stories42M": dict(dim=512, n_layers=8, n_heads=8, n_kv_heads=8, hidden_dim=1376, vocab_size=32000),
    "stories110M": dict(dim=768, n_layers=12, n_heads=12, n_kv_heads=12, hidden_dim=2048, vocab_size=32000),
    "qwen2.5-0.5b": dict(dim=896, n_layers=24, n_heads=14, n_kv_heads=2, hidden_dim=4864, vocab_size=151936),
}


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c["dim"] // c["n_heads"]
        self.head_dim = d
        self.attn_norm = RMSNorm(c["dim"], 1e-5)
        self.wqkv = torch.nn.Linear(c["dim"], (c["n_heads"] + 2 * c["n_kv_heads"]) * d, bias=False)
        self.wo = torch.nn.Linear(c["n_heads"] * d, c["dim"], bias=False)
        self.ffn_norm = RMSNorm(c["dim"], 1e-5)
        self.w13 = torch.nn.Linear(c["dim"], 2 * c["hidden_dim"], bias=False)
        self.w2 = torch.nn.Linear(c["hidden_dim"], c["dim"], bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        H, Hkv, D = self.c["n_heads"], self.c["n_kv_heads"], self.head_dim
        q, k, v = self.wqkv(self.attn_norm(x)).split([H * D, Hkv * D, Hkv * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, Hkv, D).transpose(1, 2)
        v = v.view(B, T, Hkv, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if Hkv != H:
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
        if hasattr(F, "scaled_dot_product_attention"):  # PyTorch >= 2.0
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # PyTorch 1.13 (Debian 12): the same math, explicitly
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(D)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            y = scores.masked_fill(mask, float("-inf")).softmax(dim=-1) @ v
        x = x + self.wo(y.transpose(1, 2).reshape(B, T, H * D))
        h1, h3 = self.w13(self.ffn_norm(x)).chunk(2, dim=-1)
        return x + self.w2(F.silu(h1) * h3)


class Llama(torch.nn.Module):
    def __init__(self, c, T):
        super().__init__()
        self.embed = torch.nn.Embedding(c["vocab_size"], c["dim"])
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["n_layers"]))
        self.norm = RMSNorm(c["dim"], 1e-5)
        d = c["dim"] // c["n_heads"]
        inv = 1.0 / (10000.0 ** (torch.arange(0, d, 2).double() / d))
        ang = torch.outer(torch.arange(T).double(), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)
        # llama2.c's init: normal(0, 0.02), residual projections scaled by 1/sqrt(2L).
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c["n_layers"]) if name.endswith(("wo.weight", "w2.weight")) else 0.02
                torch.nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        logits = F.linear(self.norm(x), self.embed.weight)  # tied classifier
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="stories110M", choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = PRESETS[a.model]
    model = Llama(c, a.seq).to(a.device)
    fused = {"fused": True} if a.device == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, **fused)
    step_model = torch.compile(model) if a.compile else model
    tokens = torch.randint(0, c["vocab_size"], (a.batch, a.seq), device=a.device)
    targets = torch.randint(0, c["vocab_size"], (a.batch, a.seq), device=a.device)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=a.device, dtype=torch.bfloat16, enabled=a.bf16):
            loss = step_model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        if a.device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = step()
        if a.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    ms = 1e3 * times[len(times) // 2]
    tok_s = a.batch * a.seq / (ms / 1e3)
    print(json.dumps({"peer": "pytorch " + torch.__version__ + (" compile" if a.compile else ""),
                      "model": a.model, "batch": a.batch, "seq": a.seq, "threads": torch.get_num_threads(),
                      "ms_per_step": ms, "tok_s": tok_s, "loss": float(loss)}))


if __name__ == "__main__":
    main()

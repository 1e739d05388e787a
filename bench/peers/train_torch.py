"""The PyTorch peer of `npm run bench -- train-cuda`: what a user would otherwise run.

A plain-PyTorch Qwen2 of the same config (written here, not imported: the point is what plain
PyTorch does), trained the way such a user trains: float32 parameters under bf16 autocast,
scaled_dot_product_attention (causal, grouped-query), activation checkpointing of every decoder
layer, fused AdamW. One sequence of S tokens per step, on cuda:0.

Also measures, in the same process and on the same GPU, the bf16 matmul rate (an 8192³
torch.matmul) and torch.matmul on the GEMM shapes the trainer runs, so the bench can set our
numbers beside them.

Reads one JSON request on argv[1]; prints one JSON object per result line on stdout.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * x32).to(x.dtype)


def rope_tables(seq, head_dim, theta, device):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq, device=device, dtype=torch.float32), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        h, self.heads, self.kv_heads = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.head_dim = h // self.heads
        self.q = torch.nn.Linear(h, self.heads * self.head_dim, bias=True)
        self.k = torch.nn.Linear(h, self.kv_heads * self.head_dim, bias=True)
        self.v = torch.nn.Linear(h, self.kv_heads * self.head_dim, bias=True)
        self.o = torch.nn.Linear(self.heads * self.head_dim, h, bias=False)
        self.gate = torch.nn.Linear(h, c["intermediate_size"], bias=False)
        self.up = torch.nn.Linear(h, c["intermediate_size"], bias=False)
        self.down = torch.nn.Linear(c["intermediate_size"], h, bias=False)
        self.norm1 = RMSNorm(h, c["rms_norm_eps"])
        self.norm2 = RMSNorm(h, c["rms_norm_eps"])

    def forward(self, x, cos, sin):
        s = x.shape[1]
        y = self.norm1(x)
        q = self.q(y).view(1, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(y).view(1, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(y).view(1, s, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(1, s, -1))
        y = self.norm2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class Qwen2(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = torch.nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = torch.nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.head = None if c["tie_word_embeddings"] else torch.nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def forward(self, ids, labels):
        x = self.embed(ids)
        head_dim = self.c["hidden_size"] // self.c["num_attention_heads"]
        cos, sin = rope_tables(ids.shape[1], head_dim, self.c["rope_theta"], ids.device)
        for layer in self.layers:
            x = checkpoint(layer, x, cos, sin, use_reentrant=False)
        x = self.norm(x)
        weight = self.embed.weight if self.head is None else self.head.weight
        logits = F.linear(x, weight)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1))


def timed_steps(c, seq, steps):
    torch.manual_seed(0)
    model = Qwen2(c).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01, fused=True)
    ids = (torch.arange(seq, device="cuda") * 7919 + 1) % c["vocab_size"]
    labels = (torch.arange(seq, device="cuda") * 7919 + 2) % c["vocab_size"]
    ids, labels = ids.view(1, -1), labels.view(1, -1)
    seconds = []
    for s in range(1 + steps):
        if s == 1:
            torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if s >= 1:
            seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated()
    del model, opt
    torch.cuda.empty_cache()
    return seconds, peak


def matmul_ms(m, n, k, iterations):
    # Row-major out = a · bᵀ with b stored [n, k], as a linear layer (the trainer's trans_b GEMMs).
    a = torch.rand(m, k, device="cuda", dtype=torch.bfloat16) * 2 - 1
    b = torch.rand(n, k, device="cuda", dtype=torch.bfloat16) * 2 - 1
    torch.matmul(a, b.t())
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iterations):
        torch.matmul(a, b.t())
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / iterations


def main():
    request = json.loads(sys.argv[1])
    out = lambda record: print(json.dumps(record), flush=True)
    out({"kind": "versions", "torch": torch.__version__, "device": torch.cuda.get_device_name(0)})
    if request.get("matmul"):
        ms = matmul_ms(8192, 8192, 8192, 20)
        out({"kind": "matmul", "m": 8192, "n": 8192, "k": 8192, "ms": ms})
    for shape in request.get("gemms", []):
        ms = matmul_ms(shape["m"], shape["n"], shape["k"], shape.get("iterations", 20))
        out({"kind": "gemm", **shape, "ms": ms})
    for run in request.get("train", []):
        try:
            seconds, peak = timed_steps(run["config"], run["seq"], run["steps"])
            out({"kind": "train", "name": run["name"], "seq": run["seq"], "seconds": seconds, "peak_bytes": peak})
        except torch.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            out({"kind": "train", "name": run["name"], "seq": run["seq"], "error": f"out of memory: {e}"})


if __name__ == "__main__":
    main()

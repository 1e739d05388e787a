"""The PyTorch cross-check of `longctx demo --niah`: is retrieval a recipe problem or a trainer defect?

Trains a plain-PyTorch Qwen2 of the `tiny` preset's shape (written here, not imported) on the
same packed corpus the demo trains on, window after window as the trainer reads it (sequence k is
tokens [kS, kS + S], wrapping), with the demo's optimizer and schedule (AdamW, linear warmup,
cosine to min_lr, gradient clipping), on this machine's CPUs. Every `--eval-every` steps it scores
passkey cases in the demo's wording (intro, filler, needle at 9 depths, question, 5-digit key) by
the seed's rule: a case counts only when every answer token is the argmax. The haystack and keys
come from Python's RNG, so cases differ from `longctx eval niah`'s but ask the same thing.

Prints one JSON object per evaluation. Needs torch (CPU is enough); nothing in `make test` runs it.

    python3 bench/peers/niah_torch.py --data runs/data/niah.index.json --steps 12000
"""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

BOS = 256
INTRO = ('There is an important piece of information hidden inside a lot of irrelevant text. '
         'Find it and memorize it. I will quiz you about it.\n\n')
QUESTION = '\n\nWhat is the pass key? The pass key is '
WORDS = {
    'det': 'the a every one that this no some'.split(),
    'adj': ('quiet old small bright green heavy distant warm narrow simple early late broken careful '
            'golden hidden patient strange gentle empty busy silver open cold').split(),
    'noun': ('river stone garden teacher window village road letter market bird field lamp bridge '
             'child engine forest harbor island kitchen ladder mountain painter question station '
             'tower valley wagon winter farmer clock story library boat city song').split(),
    'verb': ('carries finds watches follows builds remembers opens crosses paints answers gathers '
             'reaches keeps moves leaves visits counts holds teaches closes').split(),
}


def needle(key):
    return f'The pass key is {key}. Remember it. {key} is the pass key. '


def sentence(rng):
    def phrase():
        return f"{rng.choice(WORDS['det'])} {rng.choice(WORDS['adj'])} {rng.choice(WORDS['noun'])}"
    s = f"{phrase()} {rng.choice(WORDS['verb'])} {phrase()}"
    return s[0].upper() + s[1:] + '. '


def encode(text):
    return list(text.encode('utf-8'))


def cases(seq, seed):
    """9 depths × 4 keys of exactly `seq` tokens: (ids, where the answer starts)."""
    rng = random.Random(seed)
    hay = []
    while len(hay) < seq:
        hay += encode(sentence(rng))
    out = []
    for depth in [0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1] * 4:
        key = str(rng.randint(10000, 99999))
        head, nd, ans = [BOS] + encode(INTRO), encode(needle(key)), encode(key)
        n = seq - len(head) - len(nd) - len(encode(QUESTION)) - len(ans)
        k = round(depth * n)
        ids = head + hay[:k] + nd + hay[k:n] + encode(QUESTION) + ans
        out.append((depth, torch.tensor(ids), seq - len(ans)))
    return out


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        h, hd = c['hidden_size'], c['hidden_size'] // c['num_attention_heads']
        self.heads, self.kv, self.hd = c['num_attention_heads'], c['num_key_value_heads'], hd
        self.norm1 = RMSNorm(h, c['rms_norm_eps'])
        self.norm2 = RMSNorm(h, c['rms_norm_eps'])
        self.q = torch.nn.Linear(h, self.heads * hd)
        self.k = torch.nn.Linear(h, self.kv * hd)
        self.v = torch.nn.Linear(h, self.kv * hd)
        self.o = torch.nn.Linear(self.heads * hd, h, bias=False)
        self.gate = torch.nn.Linear(h, c['intermediate_size'], bias=False)
        self.up = torch.nn.Linear(h, c['intermediate_size'], bias=False)
        self.down = torch.nn.Linear(c['intermediate_size'], h, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape

        def rope(z):
            half = self.hd // 2
            return z * cos[:t] + torch.cat([-z[..., half:], z[..., :half]], -1) * sin[:t]

        y = self.norm1(x)
        q = rope(self.q(y).view(b, t, self.heads, self.hd).transpose(1, 2))
        k = rope(self.k(y).view(b, t, self.kv, self.hd).transpose(1, 2))
        v = self.v(y).view(b, t, self.kv, self.hd).transpose(1, 2)
        groups = self.heads // self.kv
        a = F.scaled_dot_product_attention(q, k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1),
                                           is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, -1))
        y = self.norm2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class Qwen2(torch.nn.Module):
    """Tied embeddings, as the `tiny` preset has."""

    def __init__(self, c, max_len):
        super().__init__()
        self.embed = torch.nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.layers = torch.nn.ModuleList(Layer(c) for _ in range(c['num_hidden_layers']))
        self.norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        for p in self.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.02)
        hd = c['hidden_size'] // c['num_attention_heads']
        inv = 1.0 / (c['rope_theta'] ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.outer(torch.arange(max_len).float(), inv)
        self.cos, self.sin = torch.cat([freqs.cos()] * 2, -1), torch.cat([freqs.sin()] * 2, -1)

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin)
        return self.norm(x) @ self.embed.weight.T


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', required=True, help='the packed corpus index (runs/data/niah.index.json)')
    p.add_argument('--seq', type=int, default=512)
    p.add_argument('--steps', type=int, default=12000)
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--min-lr', type=float, default=3e-4)
    p.add_argument('--warmup', type=int, default=50)
    p.add_argument('--weight-decay', type=float, default=0.01)
    p.add_argument('--clip', type=float, default=1.0)
    p.add_argument('--eval-every', type=int, default=2000)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    index = json.load(open(a.data))
    tokens = np.fromfile(os.path.join(os.path.dirname(a.data), index['tokenFile']), dtype='<u4')
    if len(tokens) != index['tokens']:
        raise SystemExit(f"{a.data}: says {index['tokens']} tokens, the token file has {len(tokens)}")
    config = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                  num_hidden_layers=2, vocab_size=index['tokenizer']['vocabSize'],
                  rope_theta=10000.0, rms_norm_eps=1e-6)
    model = Qwen2(config, a.seq)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    grid = cases(a.seq, a.seed + 1)
    windows = (len(tokens) - 1) // a.seq
    started = time.time()
    for step in range(a.steps):
        if step < a.warmup:
            lr = a.lr * (step + 1) / a.warmup
        else:
            progress = (step - a.warmup) / max(1, a.steps - a.warmup)
            lr = a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * progress))
        for group in opt.param_groups:
            group['lr'] = lr
        w = step % windows
        window = torch.from_numpy(tokens[w * a.seq:w * a.seq + a.seq + 1].astype(np.int64))
        loss = F.cross_entropy(model(window[None, :-1])[0], window[1:])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            hits, answer_loss = 0, 0.0
            with torch.no_grad():
                for _, ids, start in grid:
                    logits = model(ids[None])[0][start - 1:-1]
                    hits += int((logits.argmax(-1) == ids[start:]).all())
                    answer_loss += F.cross_entropy(logits, ids[start:]).item()
            print(json.dumps({'step': step + 1, 'tokens': (step + 1) * a.seq, 'loss': round(loss.item(), 4),
                              'accuracy': hits / len(grid), 'answer_loss': round(answer_loss / len(grid), 4),
                              'seconds': round(time.time() - started, 1)}), flush=True)


if __name__ == '__main__':
    main()

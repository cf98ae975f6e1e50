"""A small GPT built from stock PyTorch modules only (nothing here imports
smp): what a user brings to smp unchanged. Built inside
smp.tensor_parallelism(), each of its modules has an smp.nn twin (the
embeddings' vocabulary, the layers' attention heads and MLP, the head's
vocabulary split over TP_GROUP), swapped in by smp.DistributedModel.
examples/train_gpt.py trains it (and gpt_model.GPT, its hand-written twin).
"""

import torch
import torch.nn as nn


class StockGPT(nn.Module):
    """Token and position embeddings, causal pre-norm
    nn.TransformerEncoderLayers (GELU, dropout 0 by default), a final
    LayerNorm and a linear head over the vocabulary; forward(ids) -> logits."""

    def __init__(self, vocab=64, seq=32, d=64, heads=4, layers=4, dropout=0.0):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, dim_feedforward=4 * d, dropout=dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, ids):
        T = ids.shape[1]
        causal = torch.triu(torch.full((T, T), float("-inf"), device=ids.device), 1)
        h = self.wte(ids) + self.wpe(torch.arange(T, device=ids.device))
        for b in self.blocks:
            h = b(h, src_mask=causal)
        return self.lm_head(self.ln_f(h))

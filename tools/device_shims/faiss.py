"""Exact stand-in for the one faiss index the mislabel check uses (``IndexFlatIP``), for machines
where faiss-cpu is not installed and cannot be (tools/gpu_session.py on the lent GPU machine).
Never on the import path of the package itself."""
from __future__ import annotations

import numpy as np
import torch


class IndexFlatIP:
    """Brute-force inner-product search (torch, on the GPU when there is one), blocks of 4096 queries."""

    def __init__(self, d: int):
        self.d = int(d)
        self.dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.xb = torch.zeros((0, self.d), dtype=torch.float32, device=self.dev)

    @property
    def ntotal(self) -> int:
        return int(self.xb.shape[0])

    def add(self, x: np.ndarray) -> None:
        self.xb = torch.cat([self.xb, torch.as_tensor(np.ascontiguousarray(x, np.float32), device=self.dev)])

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q_t = torch.as_tensor(np.ascontiguousarray(q, np.float32), device=self.dev)
        k_eff = min(int(k), self.ntotal)
        sims, idx = [], []
        for start in range(0, len(q_t), 4096):
            s, i = (q_t[start:start + 4096] @ self.xb.T).topk(k_eff, dim=1)
            sims.append(s.cpu().numpy())
            idx.append(i.cpu().numpy())
        d = np.concatenate(sims) if sims else np.zeros((0, k_eff), np.float32)
        i = np.concatenate(idx).astype(np.int64) if idx else np.zeros((0, k_eff), np.int64)
        if k_eff < k:  # faiss pads with -1
            d = np.pad(d, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
            i = np.pad(i, ((0, 0), (0, k - k_eff)), constant_values=-1)
        return d.astype(np.float32), i

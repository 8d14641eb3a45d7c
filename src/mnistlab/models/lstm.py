"""Recurrent classifier reading the image row by row: 28 steps of 28 pixels."""

from typing import Optional

import torch
from torch import nn


class RowLSTM(nn.Module):
    def __init__(
        self,
        hidden_size: int = 128,
        input_proj: Optional[int] = None,
        cell: str = "lstm",
        num_layers: int = 1,
        bidirectional: bool = False,
        forget_bias: Optional[float] = None,
        dropout: float = 0.0,
        num_classes: int = 10,
    ):
        super().__init__()
        self.proj = nn.Linear(28, input_proj) if input_proj else nn.Identity()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(
            input_proj or 28, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=bidirectional
        )
        self.dropout = nn.Dropout(dropout)  # on the last hidden state, only while training
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        if forget_bias is not None:
            self.set_forget_bias(forget_bias)

    @torch.no_grad()
    def set_forget_bias(self, value: float) -> None:
        """PyTorch has two biases per gate (gate order i, f, g, o): their sum starts at `value`."""
        h = self.rnn.hidden_size
        for name, bias in self.rnn.named_parameters():
            if name.startswith("bias_ih"):
                bias[h : 2 * h] = value
            elif name.startswith("bias_hh"):
                bias[h : 2 * h] = 0.0

    def forward(self, x):
        rows = self.proj(x.squeeze(1))  # (N, 28 rows, 28 pixels) -> (N, 28, input size)
        _, state = self.rnn(rows)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        last = torch.cat([h_n[-2], h_n[-1]], dim=1) if self.rnn.bidirectional else h_n[-1]
        return self.head(self.dropout(last))

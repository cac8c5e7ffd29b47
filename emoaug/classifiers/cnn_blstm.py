"""CNN-BLSTM classifier after Malik et al. (2023).

Three 1-D convolution blocks treat the mel bins as input channels and slide over time; a
bidirectional LSTM reads the resulting sequence; its outputs are mean-pooled over time (this
pooled vector is the embedding) and a linear layer gives the logits.
"""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("mean", "mean_std", "max", "attention")


def _conv_block(in_channels: int, out_channels: int, kernel_size: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        # "same" padding for odd kernels keeps the time axis aligned with the input frames
        nn.Conv1d(in_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(),
        nn.Dropout(dropout),
    )


class CNNBLSTM(nn.Module):
    """``[B, n_mels, n_frames]`` -> logits ``[B, n_classes]``; ``embed`` gives ``[B, 2 * lstm_hidden]``."""

    def __init__(
        self,
        n_mels: int,
        n_classes: int,
        *,
        channels: int,
        kernel_size: int,
        conv_dropout: float,
        lstm_hidden: int,
        lstm_layers: int,
        lstm_dropout: float,
        time_pool: int,
        pooling: str = "mean",
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"CNNBLSTM: pooling must be one of {POOLINGS}, got {pooling!r}")
        self.n_mels, self.pooling = n_mels, pooling
        blocks: list[nn.Module] = []
        for index in range(3):
            blocks.append(_conv_block(n_mels if index == 0 else channels, channels, kernel_size, conv_dropout))
            if index < 2 and time_pool > 1:
                # Pooling between blocks shortens the sequence the LSTM must read (the costly part on
                # CPU); ceil_mode keeps very short inputs from collapsing to zero frames.
                blocks.append(nn.MaxPool1d(kernel_size=time_pool, ceil_mode=True))
        self.conv = nn.Sequential(*blocks)
        self.lstm = nn.LSTM(
            input_size=channels,
            hidden_size=lstm_hidden,
            num_layers=lstm_layers,
            batch_first=True,
            bidirectional=True,
            # torch applies LSTM dropout between layers only (and warns when there is one layer)
            dropout=lstm_dropout if lstm_layers > 1 else 0.0,
        )
        self.output_dropout = nn.Dropout(lstm_dropout)
        self.embedding_dim = 2 * lstm_hidden * (2 if pooling == "mean_std" else 1)
        if pooling == "attention":  # attentive pooling: a learned weight per frame (it can ignore padding)
            self.attention = nn.Sequential(nn.Linear(2 * lstm_hidden, lstm_hidden), nn.Tanh(),
                                           nn.Linear(lstm_hidden, 1))
        self.classifier = nn.Linear(self.embedding_dim, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The BLSTM outputs pooled over time, ``[B, embedding_dim]``: their mean (``mean``), mean and std
        (``mean_std``), maximum (``max``) or attention-weighted mean (``attention``)."""
        if x.ndim != 3 or x.shape[1] != self.n_mels:
            raise ValueError(f"CNNBLSTM expects [B, {self.n_mels}, T], got {tuple(x.shape)}")
        features = self.conv(x)  # [B, C, T']
        sequence, _ = self.lstm(features.transpose(1, 2))  # [B, T', 2H]
        if self.pooling == "mean_std":  # statistics pooling, as in x-vectors
            return torch.cat([sequence.mean(dim=1), sequence.std(dim=1, unbiased=False)], dim=1)
        if self.pooling == "max":
            return sequence.max(dim=1).values
        if self.pooling == "attention":
            weights = torch.softmax(self.attention(sequence), dim=1)  # [B, T', 1]
            return (weights * sequence).sum(dim=1)
        return sequence.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.output_dropout(self.embed(x)))


def cnn_blstm(
    n_mels: int,
    n_classes: int,
    *,
    channels: int = 128,
    kernel_size: int = 5,
    conv_dropout: float = 0.1,
    lstm_hidden: int = 128,
    lstm_layers: int = 2,
    lstm_dropout: float = 0.2,
    time_pool: int = 2,
    pooling: str = "mean",
) -> CNNBLSTM:
    """Malik et al. (2023) CNN-BLSTM; ``time_pool`` is the max-pool factor between conv blocks (1 = none)."""
    return CNNBLSTM(
        n_mels,
        n_classes,
        channels=channels,
        kernel_size=kernel_size,
        conv_dropout=conv_dropout,
        lstm_hidden=lstm_hidden,
        lstm_layers=lstm_layers,
        lstm_dropout=lstm_dropout,
        time_pool=time_pool,
        pooling=pooling,
    )

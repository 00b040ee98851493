"""The settings of DyGLNet's Table 6 ablation variants, torch-free: ``models.dyglnet`` builds them and the reports
print them (docs/explanation/paper-choices.md)."""

from __future__ import annotations

ABLATION_VARIANTS: dict[str, dict] = {
    "dyglnet_w_bilinear": {"upsampler": "bilinear"},
    "dyglnet_w_tconv": {"upsampler": "tconv"},
    "dyglnet_wo_dyt": {"attn_norm": "batchnorm"},
    "dyglnet_wo_dc": {"mixer_dilations": ()},
    "dyglnet_wo_sa": {"use_attention": False},
    "dyglnet_split_dc": {"attn_channels": (16, 28, 40)},  # one eighth of each stage (release: about one fifth)
    "dyglnet_split_sa": {"attn_channels": (64, 112, 160)},  # half of each stage's channels
}

"""HiFormer's Double-Level Fusion (also BEFUnet's): what its parameters contribute to the output."""

import torch

from baselines._crossvit_fusion import DoubleLevelFusion


def test_fusion_uses_its_encoders_and_position_embeddings():
    torch.manual_seed(0)
    fusion = DoubleLevelFusion(dims=(8, 16), grid_sizes=(4, 2), num_heads=(2, 2))
    fine, coarse = fusion(torch.randn(2, 4, 4, 8), torch.randn(2, 2, 2, 16))
    assert fine.shape == (2, 8, 4, 4) and coarse.shape == (2, 16, 2, 2)
    (fine * torch.randn_like(fine)).sum().add((coarse * torch.randn_like(coarse)).sum()).backward()
    block = fusion.cross_block
    # the ViT encoders feed the decoder (the reference repositories throw their output away)
    assert all(p.grad.abs().sum() > 0 for p in block.blocks.parameters())
    # the position embeddings are live (BEFUnet's count keeps them)
    assert all(p.grad.abs().sum() > 0 for p in fusion.pos_embeds)
    # the cross-attention path only updates the class tokens, which the decoder drops
    cross = [*block.projs.parameters(), *block.fusion.parameters(), *block.revert_projs.parameters()]
    assert cross and all(p.grad.abs().sum() == 0 for p in cross)

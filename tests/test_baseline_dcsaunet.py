"""DCSAU-Net: every model owns its weights."""

from baselines.dcsaunet import dcsaunet


def test_models_own_their_weights():
    # the reference shares one module-level encoder between all instances; ours must not
    a, b = dcsaunet(), dcsaunet()
    assert a.encoder[0][0].reduce[0].weight.data_ptr() != b.encoder[0][0].reduce[0].weight.data_ptr()

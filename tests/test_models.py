"""Shapes and invariants of the report's models."""

import torch

from models import ConvAutoencoder, Discriminator, Generator, LatentClassifier


def test_autoencoder_shapes_and_range():
    ae = ConvAutoencoder(16)
    x = torch.rand(5, 1, 28, 28)
    z = ae.encode(x)
    assert z.shape == (5, 16)
    assert ae.encoder.conv(x).shape == (5, 32, 3, 3)  # the report's 3*3*32 before the linear layers
    y = ae.decode(z)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_classifier_head_and_log_softmax():
    ae = ConvAutoencoder(16)
    clf = LatentClassifier(ae.encoder, 16)
    widths = [m.out_features for m in clf.head if isinstance(m, torch.nn.Linear)]
    assert widths == [256, 256, 128, 10]
    out = clf(torch.rand(4, 1, 28, 28))
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4))


def test_frozen_encoder_gets_no_gradients_and_stays_eval():
    ae = ConvAutoencoder(8)
    clf = LatentClassifier(ae.encoder, 8, mode="frozen").train()
    assert not clf.encoder.training and clf.head.training
    clf(torch.rand(4, 1, 28, 28)).sum().backward()
    assert all(p.grad is None for p in clf.encoder.parameters())
    assert all(p.grad is not None for p in clf.head.parameters())


def test_finetune_encoder_gets_gradients():
    ae = ConvAutoencoder(8)
    clf = LatentClassifier(ae.encoder, 8, mode="finetune").train()
    clf(torch.rand(4, 1, 28, 28)).sum().backward()
    assert all(p.grad is not None for p in clf.encoder.parameters())


def test_gan_shapes_and_sizes_are_parameters():
    g, d = Generator(latent_size=32, hidden_size=64), Discriminator(hidden_size=64)
    x = g(torch.randn(7, 32))
    assert x.shape == (7, 1, 28, 28) and x.abs().max() <= 1
    assert d(x).shape == (7,)
    assert sum(p.numel() for p in Generator().parameters()) == 100 * 784 + 784 + 2 * (
        784 * 784 + 784
    )

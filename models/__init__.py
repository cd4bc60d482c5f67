"""Pure nn.Modules of the report: the convolutional autoencoder, the latent classifier, the MLP GAN,
and the small reference CNN whose features define FID-FM. No training, I/O or Ray code here."""

from models.autoencoder import ConvAutoencoder, Decoder, Encoder
from models.classifier import LatentClassifier
from models.fm_reference import FMReferenceCNN
from models.gan import Discriminator, Generator

__all__ = [
    "ConvAutoencoder",
    "Decoder",
    "Discriminator",
    "Encoder",
    "FMReferenceCNN",
    "Generator",
    "LatentClassifier",
]

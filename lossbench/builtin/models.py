"""Built-in model factories: MLPs for points, small DCGAN-style convolutional nets for images, and their VAEs.

The discriminators have no BatchNorm: a gradient penalty (WGAN-GP, DRAGAN, R1) is defined per sample, and
BatchNorm would make each sample's score depend on the rest of the batch. Models are kept small because the
default grid trains every one of them many times on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from lossbench.api import GAN, VAE, DataSpec, ModelFactory, hookimpl

IMAGE_SIZES = (8, 16, 28, 32)
IMAGE_CHANNELS = (1, 3)


class Scores(nn.Module):
    """Wraps a network whose output is [B, 1] so that the discriminator returns scores of shape [B]."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).reshape(x.shape[0])


class GaussianEncoder(nn.Module):
    """A body whose output is split into the posterior's mean and log-variance: ``x -> (mu, logvar)``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.body(x).chunk(2, dim=1)
        return mu, logvar


class Reshape(nn.Module):
    """Reshape to ``(B, *shape)``."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)


def supports_points(data: DataSpec) -> bool:
    """Points: kind "points" and a flat shape ``(d,)``."""
    return data.kind == "points" and len(data.shape) == 1 and data.shape[0] >= 1


def supports_images(data: DataSpec) -> bool:
    """Images: kind "image", shape ``(C, S, S)`` with C in 1 or 3 and S in 8, 16, 28 or 32."""
    return (
        data.kind == "image"
        and len(data.shape) == 3
        and data.shape[0] in IMAGE_CHANNELS
        and data.shape[1] == data.shape[2]
        and data.shape[1] in IMAGE_SIZES
    )


# -- MLPs ----------------------------------------------------------------------------------------------------------
def mlp(sizes: list[int], activation: Callable[[], nn.Module]) -> nn.Sequential:
    """Linear layers of the given sizes with a fresh ``activation()`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def leaky() -> nn.Module:
    """LeakyReLU with slope 0.2, the usual choice for discriminators."""
    return nn.LeakyReLU(0.2)


class MLPGAN(ModelFactory):
    """3-layer MLP generator (ReLU) and discriminator (LeakyReLU), width 128, latent 8, for points."""

    name = "mlp"
    family = "gan"
    width = 128
    latent_dim = 8

    def supports(self, data: DataSpec) -> bool:
        return supports_points(data)

    def build(self, data: DataSpec) -> GAN:
        (dim,) = data.shape
        w = self.width
        generator = mlp([self.latent_dim, w, w, dim], nn.ReLU)
        discriminator = Scores(mlp([dim, w, w, 1], leaky))
        return GAN(generator, discriminator, self.latent_dim)


class MLPVAE(ModelFactory):
    """3-layer MLP encoder and decoder (ReLU), width 128, latent 4, for points."""

    name = "mlp-vae"
    family = "vae"
    width = 128
    latent_dim = 4

    def supports(self, data: DataSpec) -> bool:
        return supports_points(data)

    def build(self, data: DataSpec) -> VAE:
        (dim,) = data.shape
        w = self.width
        encoder = GaussianEncoder(mlp([dim, w, w, 2 * self.latent_dim], nn.ReLU))
        decoder = mlp([self.latent_dim, w, w, dim], nn.ReLU)
        return VAE(encoder, decoder, self.latent_dim)


# -- convolutional nets --------------------------------------------------------------------------------------------
def _plan(size: int, width: int) -> tuple[int, list[int]]:
    """The smallest feature map's side and the channels of the hidden feature maps, smallest map (widest) first.

    Two stride-2 stages (three for 32 px), so the smallest side is 2 for 8 px, 4 for 16 and 32 px, 7 for 28 px;
    channels halve each time the side doubles, ending at ``width`` at half resolution.
    """
    n_up = 3 if size == 32 else 2
    return size >> n_up, [width * 2 ** (n_up - 1 - i) for i in range(n_up)]


def conv_generator(data: DataSpec, latent_dim: int, width: int, batchnorm: bool) -> nn.Sequential:
    """DCGAN generator: project z to base x base maps, then stride-2 transposed convs up to the image, then tanh.

    As in Radford et al., the projection is one matrix multiplication reshaped into feature maps.
    """
    base, channels = _plan(data.size, width)

    def norm(c: int) -> list[nn.Module]:
        return [nn.BatchNorm2d(c)] if batchnorm else []

    layers: list[nn.Module] = [
        nn.Linear(latent_dim, channels[0] * base * base, bias=not batchnorm),
        Reshape(channels[0], base, base),
        *norm(channels[0]),
        nn.ReLU(),
    ]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not batchnorm), *norm(c_out), nn.ReLU()]
    layers += [nn.ConvTranspose2d(channels[-1], data.channels, 4, 2, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def conv_encoder(data: DataSpec, n_out: int, width: int) -> nn.Sequential:
    """Stride-2 convs with LeakyReLU and no BatchNorm down to base x base, then one linear layer to ``n_out``."""
    base, channels = _plan(data.size, width)
    channels = channels[::-1]  # narrowest first, at half resolution
    layers: list[nn.Module] = [nn.Conv2d(data.channels, channels[0], 4, 2, 1), nn.LeakyReLU(0.2)]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
    layers += [nn.Flatten(), nn.Linear(channels[-1] * base * base, n_out)]
    return nn.Sequential(*layers)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation: conv weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGAN(ModelFactory):
    """Radford et al. 2016 DCGAN, small: transposed-conv G with BatchNorm and tanh; conv D without BatchNorm."""

    name = "dcgan"
    family = "gan"
    widths = {8: 32, 16: 64, 28: 64, 32: 64}  # channels at half resolution; doubled at each halving of the side
    latent_dim = 32

    def supports(self, data: DataSpec) -> bool:
        return supports_images(data)

    def build(self, data: DataSpec) -> GAN:
        width = self.widths[data.size]
        generator = conv_generator(data, self.latent_dim, width, batchnorm=True)
        discriminator = Scores(conv_encoder(data, 1, width))
        dcgan_init(generator)
        dcgan_init(discriminator)
        return GAN(generator, discriminator, self.latent_dim)


class ConvVAE(ModelFactory):
    """Convolutional VAE: the DCGAN discriminator's layout as encoder, its generator's (no BatchNorm) as decoder."""

    name = "conv-vae"
    family = "vae"
    widths = DCGAN.widths
    latent_dim = 16

    def supports(self, data: DataSpec) -> bool:
        return supports_images(data)

    def build(self, data: DataSpec) -> VAE:
        width = self.widths[data.size]
        encoder = GaussianEncoder(conv_encoder(data, 2 * self.latent_dim, width))
        decoder = conv_generator(data, self.latent_dim, width, batchnorm=False)
        return VAE(encoder, decoder, self.latent_dim)


BUILTIN_MODELS = (MLPGAN, DCGAN, MLPVAE, ConvVAE)


@hookimpl
def register_models(register) -> None:
    for factory in BUILTIN_MODELS:
        register(factory())

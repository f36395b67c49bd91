"""Built-in model factories."""

from __future__ import annotations

from torch import nn

from lossbench.api import GAN, DataSpec, ModelFactory, hookimpl


class Scores(nn.Module):
    """Wraps a network whose output is [B, 1] so that the discriminator returns scores of shape [B]."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x).reshape(x.shape[0])


class MLPGAN(ModelFactory):
    """3-layer MLP generator and discriminator (width 128) for 2-d points, latent 2 + ..."""

    name = "mlp"
    family = "gan"
    width = 128
    latent_dim = 8

    def supports(self, data: DataSpec) -> bool:
        return data.kind == "points" and len(data.shape) == 1

    def build(self, data: DataSpec) -> GAN:
        (dim,) = data.shape
        w = self.width
        generator = nn.Sequential(
            nn.Linear(self.latent_dim, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, dim)
        )
        discriminator = Scores(nn.Sequential(
            nn.Linear(dim, w), nn.LeakyReLU(0.2), nn.Linear(w, w), nn.LeakyReLU(0.2), nn.Linear(w, 1)
        ))
        return GAN(generator, discriminator, self.latent_dim)


@hookimpl
def register_models(register) -> None:
    register(MLPGAN())

"""The GAN training loops as they were before packing and unrolling existed (commit 4f28c49), reduced to what
decides the weights: ``pack=1, unroll=0`` must reproduce them bit for bit on any processor, since both run here."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robustbench_gan.gan.dcgan import ConditionalDiscriminator, ConditionalGenerator, Discriminator, Generator
from robustbench_gan.gan.toy import ToyDiscriminator, ToyGenerator
from robustbench_gan.gan.training import generator_steps, minibatch_stream


def toy_before(data, *, steps, batch_size, lr=1e-3, d_steps=1, z_dim=2, beta1=0.5, lr_decay=True, seed=0):
    data = data.detach().float().cpu()
    torch.manual_seed(seed)
    g = ToyGenerator(z_dim=z_dim, out_dim=data.shape[1])
    d = ToyDiscriminator(in_dim=data.shape[1])
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(beta1, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(beta1, 0.999))
    gen = torch.Generator().manual_seed(seed)
    ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)
    for step in range(steps):
        if lr_decay:
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr * (1 - step / steps)
        for _ in range(d_steps):
            real = data[torch.randint(0, len(data), (batch_size,), generator=gen)]
            with torch.no_grad():
                fake = g(torch.randn(batch_size, z_dim, generator=gen))
            loss_d = F.binary_cross_entropy_with_logits(d(real), ones) + F.binary_cross_entropy_with_logits(
                d(fake), zeros)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(d(g(torch.randn(batch_size, z_dim, generator=gen))), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return g.eval(), d


class ConditionalDiscriminatorBefore(ConditionalDiscriminator):
    """The conditional discriminator's forward as it was: the image and its label map as two channels."""

    def forward(self, x, labels):
        _, h, w = self.shape
        label_map = self.label_map(labels.long()).view(-1, 1, h, w).to(x.dtype)
        return self._logit(torch.cat([self._scale(x), label_map], dim=1))


def dcgan_before(x, y, spec, *, config, seed):
    conditional = y is not None
    torch.manual_seed(seed)
    if conditional:
        g = ConditionalGenerator(spec, z_dim=config.z_dim, width=config.width)
        d = ConditionalDiscriminatorBefore(spec, width=config.width)
    else:
        g = Generator(spec, z_dim=config.z_dim, width=config.width)
        d = Discriminator(spec, width=config.width)
    betas = (config.beta1, 0.999)
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=config.lr, betas=betas)
    gen = torch.Generator().manual_seed(seed)
    n, k = len(x), spec.num_classes
    stream = minibatch_stream(n, config.batch_size, gen)
    bs = min(config.batch_size, n)

    def noise():
        z = torch.randn(bs, config.z_dim, generator=gen)
        if not conditional:
            return (z,)
        return z, torch.randint(0, k, (bs,), generator=gen)

    def real():
        idx = next(stream)
        return (x[idx],) if y is None else (x[idx], y[idx].long())

    ones, zeros = torch.ones(bs), torch.zeros(bs)
    g.train()
    d.train()
    for _ in range(generator_steps(n, config)):
        for _ in range(config.d_steps):
            xb = real()
            z = noise()
            with torch.no_grad():
                fake = g(*z)
            loss_d = F.binary_cross_entropy_with_logits(d(*xb), ones) + F.binary_cross_entropy_with_logits(
                d(fake, *z[1:]), zeros)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        z = noise()
        loss_g = F.binary_cross_entropy_with_logits(d(g(*z), *z[1:]), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return g.eval(), d

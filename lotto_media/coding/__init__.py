"""Entropy coding and the codec's packets: latents, masks, network parameters, group and frame packets."""

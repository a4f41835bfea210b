"""The network: random weights and their mask, latents, the ARM, synthesis, and the integer decoder."""

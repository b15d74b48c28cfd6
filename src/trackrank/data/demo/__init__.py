"""The synthetic demo catalog: tags drawn per track, audio synthesised from them."""
